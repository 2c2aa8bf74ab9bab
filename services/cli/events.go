package cli

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

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
	var crisisID, region, country string
	var all, asJSON bool
	var count int
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print crisis events as they flow",
		Long: `Print crisis events as they flow: time, type, crisis, event id and data.
By default only new events are shown; --all replays the stream from the start.
Events that cannot be decoded are shown with the reason.`,
		Example: "  demarche events tail\n  demarche events tail --crisis GN-20261127-K7Q3P --all\n  demarche events tail --region africa\n  demarche events tail --all --json | jq .data",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			policy := jetstream.DeliverNewPolicy
			if all {
				policy = jetstream.DeliverAllPolicy
			}
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
	fl.IntVar(&count, "count", 0, "stop after this many events (0: run until Ctrl-C)")
	fl.BoolVar(&asJSON, "json", false, "print one CloudEvent per line in structured JSON mode, data in its protobuf JSON form (converted here; the stream stays protobuf)")
	return cmd
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
		fmt.Fprintf(app.Out, "%s  %-40s %-22s %s  %s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Type, ev.Subject, ev.ID,
			protojson.MarshalOptions{}.Format(ev.Data))
	}
	return nil
}
