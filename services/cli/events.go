package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func newEventsCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Watch the crisis event stream",
		Long: `Crisis events are CloudEvents 1.0 on the JetStream stream ` + eventbus.StreamName + `,
subjects demarche.crisis.<region>.<country>.<crisis-id>.<event>. Any NATS client can
subscribe; these commands decode them for you.`,
	}
	cmd.AddCommand(newEventsTailCmd(app))
	return cmd
}

func newEventsTailCmd(app *App) *cobra.Command {
	var crisisID, region, country, dataDir string
	var all, onlyNew, legacyJSON bool
	var count int
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print crisis events as they flow",
		Long: `Print crisis events as they flow: time, type, crisis, event id and data.
With --crisis the crisis's events are shown from its first one (its opening,
or the warning that opened it), then as they come; otherwise only new events
are shown. --all replays the stream from its start, --new shows only new
events whatever the filter. Events that cannot be decoded are shown with the
reason.

It connects as demarche dev's operator, with the credentials in the data
folder it is pointed at (--data-dir, default ./.demarche or DEMARCHE_DATA_DIR),
or with --nats-creds FILE (a cluster's, or another identity's).`,
		Example: "  demarche events tail\n  demarche events tail --crisis GN-20261127-K7Q3P\n  demarche events tail --region africa\n  demarche events tail --all --output json | jq .data\n  demarche events tail --data-dir /tmp/demarche --nats-url nats://127.0.0.1:14222",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			asJSON = asJSON || legacyJSON
			if cmd.Flags().Changed("data-dir") && app.natsCreds == "" {
				// Pointed at a data folder: its operator credentials are the
				// ones to use (PersistentPreRunE put them in the URL), and a
				// folder without them is said so, not answered by the
				// server's Authorization Violation.
				if _, err := os.Stat(filepath.Join(dataDir, "nats-credentials", "operator.creds")); err != nil {
					return fmt.Errorf("--data-dir %s: no NATS credentials in it (%s/nats-credentials/operator.creds: %w): is it the data folder of a demarche dev that has started? Else pass --nats-creds FILE", dataDir, dataDir, err)
				}
			}
			if all && onlyNew {
				return fmt.Errorf("--all and --new: choose one")
			}
			filter := eventbus.AllEvents()
			switch {
			case crisisID != "":
				filter = eventbus.CrisisEvents(crisisID)
			case country != "":
				filter = eventbus.CountryEvents(country)
			case region != "":
				r, err := demarchev1.ParseRegion(region)
				if err != nil {
					return fmt.Errorf("--region: %s", reasonOf(err))
				}
				filter = eventbus.RegionEvents(r)
			}
			nc, js, err := natsx.Connect(app.NATSURL, "demarche-events-tail", app.Log)
			if err != nil {
				return fmt.Errorf("%w (is the platform running? start it with \"demarche dev\" or set --nats-url)", err)
			}
			defer nc.Close()
			policy := deliverPolicy(crisisID != "", all, onlyNew)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			oc, err := js.OrderedConsumer(ctx, eventbus.StreamName, jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{filter}, DeliverPolicy: policy,
			})
			if err != nil {
				return fmt.Errorf("subscribe to %s on %s: %w", filter, eventbus.StreamName, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "tailing %s (Ctrl-C to stop)\n", filter)
			return tail(ctx, app, oc, count, asJSON)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&crisisID, "crisis", "", "only this crisis's events")
	fl.StringVar(&country, "country", "", "only events of crises in this country")
	fl.StringVar(&region, "region", "", "only events of crises in this region: africa, americas, asia-pacific, europe, middle-east")
	fl.BoolVar(&all, "all", false, "replay the stream from its first event")
	fl.BoolVar(&onlyNew, "new", false, "only events published from now on (also with --crisis)")
	fl.IntVar(&count, "count", 0, "stop after this many events (0: run until Ctrl-C)")
	fl.StringVar(&dataDir, "data-dir", EnvOr("DEMARCHE_DATA_DIR", ".demarche"), "the demarche dev data folder whose NATS credentials to use (its nats-credentials/operator.creds; env DEMARCHE_DATA_DIR); --nats-creds overrides it")
	output.bind(cmd)
	cmd.Flag("output").Usage = "table: one line per event, for people; json: one CloudEvent per line in structured JSON mode, data in its protobuf JSON form (converted here; the stream stays protobuf)"
	fl.BoolVar(&legacyJSON, "json", false, "same as --output json")
	_ = fl.MarkDeprecated("json", "use --output json") // the flag is defined on the line above: this fails only for an unknown flag
	return cmd
}

// deliverPolicy is where a tail starts: a crisis's tail from its first event
// (the stream keeps every event; the subject filter picks the crisis's), any
// other from now on, unless --all or --new says otherwise.
func deliverPolicy(oneCrisis, all, onlyNew bool) jetstream.DeliverPolicy {
	switch {
	case all:
		return jetstream.DeliverAllPolicy
	case onlyNew:
		return jetstream.DeliverNewPolicy
	case oneCrisis:
		return jetstream.DeliverAllPolicy
	}
	return jetstream.DeliverNewPolicy
}

func tail(ctx context.Context, app *App, oc jetstream.Consumer, count int, asJSON bool) error {
	for n := 0; count == 0 || n < count; n++ {
		msg, err := oc.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("next event: %w", err)
		}
		ev, err := eventbus.Decode(msg.Headers(), msg.Data())
		if err != nil {
			fmt.Fprintf(app.Out, "%s  undecodable event: %v\n", msg.Subject(), err)
			continue
		}
		if asJSON {
			b, err := eventJSON(ev)
			if err != nil {
				return fmt.Errorf("event %s as JSON: %w", ev.ID, err)
			}
			fmt.Fprintf(app.Out, "%s\n", b)
			continue
		}
		data, err := apijson.Marshal(ev.Data)
		if err != nil {
			data = []byte(fmt.Sprintf("(data not shown: %v)", err))
		}
		fmt.Fprintf(app.Out, "%s  %-40s %-22s %s  %s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Type, ev.Subject, ev.ID, data)
	}
	return nil
}
