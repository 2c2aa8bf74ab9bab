package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/services/platform"
)

func newAdminCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Set up the engines a deployment runs on (NATS JetStream, Temporal)",
	}
	cmd.AddCommand(newAdminProvisionCmd(app))
	return cmd
}

func newAdminProvisionCmd(app *App) *cobra.Command {
	var replicas int
	var retention time.Duration
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Create the streams, buckets, Temporal namespace and search attributes Démarche needs (idempotent)",
		Long: `Create (or bring to the wanted configuration) every JetStream stream and
key-value bucket with --replicas copies, then register the Temporal namespace
(--namespace) and add Démarche's search attributes it lacks. Run it as the
provisioning identity (--nats-creds provisioner.creds), the only NATS user
allowed to manage streams, before the services start and after each upgrade.

Running it again changes nothing. It refuses, saying what is missing, when
NATS has no JetStream or fewer JetStream servers than --replicas, or when the
namespace holds one of Démarche's search attributes with another type.`,
		Example: "  demarche admin provision --nats-url nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 \\\n    --nats-creds /run/secrets/provisioner.creds --temporal-address temporal:7233 --replicas 3",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replicas < 1 || replicas > 5 {
				return fmt.Errorf("--replicas %d: allowed 1 (one server) to 5; production clusters use 3", replicas)
			}
			rep, err := platform.Provision(cmd.Context(), platform.Config{
				NATSURL: app.NATSURL, Replicas: replicas,
				TemporalAddress: app.TemporalAddress, Namespace: app.Namespace, Retention: retention,
			}, app.Log)
			if err != nil {
				return err
			}
			cluster := rep.NATS.Cluster
			if cluster == "" {
				cluster = "(lone server)"
			}
			fmt.Fprintf(app.Out, "NATS      cluster %s, %d server(s) known, replicas %d\n", cluster, rep.NATS.Servers, replicas)
			fmt.Fprintf(app.Out, "          created: %s\n", namesOrNone(rep.NATS.Created))
			fmt.Fprintf(app.Out, "          already there (configuration applied): %s\n", namesOrNone(rep.NATS.Existing))
			ns := "already there"
			if rep.Temporal.NamespaceCreated {
				ns = "registered (retention " + retention.String() + ")"
			}
			fmt.Fprintf(app.Out, "Temporal  namespace %s %s; search attributes added: %s\n", app.Namespace, ns, namesOrNone(rep.Temporal.AttributesAdded))
			return nil
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", envInt("DEMARCHE_NATS_REPLICAS", 1), "copies of each stream and bucket: 1 for one server, 3 for a production cluster (env DEMARCHE_NATS_REPLICAS)")
	cmd.Flags().DurationVar(&retention, "retention", platform.DefaultRetention, "how long Temporal keeps a closed crisis's history (when registering the namespace)")
	return cmd
}

func namesOrNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
