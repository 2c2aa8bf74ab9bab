package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/services/contract"
)

// jsonCloudEvent is one event in CloudEvents' structured JSON mode, data in
// its protobuf JSON form (`demarche events tail --json`).
type jsonCloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	Subject         string          `json:"subject"`
	DataSchema      string          `json:"dataschema"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// eventJSON renders an event as one line of JSON.
func eventJSON(ev eventbus.Event) ([]byte, error) {
	raw, err := protojson.Marshal(ev.Data)
	if err != nil {
		return nil, err
	}
	var data bytes.Buffer
	if err := json.Compact(&data, raw); err != nil {
		return nil, err
	}
	et, err := eventbus.TypeOf(ev.Data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(jsonCloudEvent{
		SpecVersion: eventbus.SpecVersion, ID: ev.ID, Source: ev.Source, Type: ev.Type,
		Time: ev.Time.UTC().Format(time.RFC3339Nano), Subject: ev.Subject, DataSchema: et.DataSchema,
		DataContentType: "application/json", Data: data.Bytes(),
	})
}

func newServeSchemaCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Run the schema service: ce-dataschema → descriptor set and JSON Schema, the AsyncAPI document (NATS micro)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				s, err := contract.Start(ctx, app.NATSURL, app.Log)
				if err != nil {
					return nil, fmt.Errorf("%w", err)
				}
				return s.Stop, nil
			})
		},
	}
}
