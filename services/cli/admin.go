package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/temporalx"

	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/services/platform"
)

func newAdminCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Set up the engines a deployment runs on (NATS JetStream, Temporal)",
	}
	cmd.AddCommand(newAdminProvisionCmd(app), newAdminCredentialsCmd(app), newAdminReadyCmd(app), newAdminOpenFundCmd(app), newAdminBackupCmd(app), newAdminRestoreCmd(app))
	cmd.AddCommand(newAdminCertificatesCmd(app))
	return cmd
}

func newAdminProvisionCmd(app *App) *cobra.Command {
	var replicas int
	var retention time.Duration
	var registry string
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
			reg, err := partners.LoadRegistry(registry)
			if err != nil {
				return fmt.Errorf("--partner-registry: %w", err)
			}
			rep, err := platform.Provision(cmd.Context(), platform.Config{
				NATSURL: app.NATSURL, Replicas: replicas,
				TemporalAddress: app.TemporalAddress, Namespace: app.Namespace, Retention: retention,
				PartnerNames: reg.Names(),
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
	cmd.Flags().StringVar(&registry, "partner-registry", "", "the partners service's registry file (each partner organisation gets its own stream; default: the embedded registry)")
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

func newAdminCredentialsCmd(app *App) *cobra.Command {
	var dir string
	var rotate, rotateTemporal, retireTemporal []string
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Generate each NATS identity's credentials and the servers' password hash files; rotate one (--rotate)",
		Long: `Generate, in --dir, one credentials file per NATS identity (<identity>.creds,
"demarche-<identity>:<password>", mode 0600: mount each into its own service
only), for every service, the provisioner, the operator, the observer, and the
partner organisations and signal sources of deploy/nats/authorization.conf;
existing files are kept. Then write --dir/` + natsauth.PasswordsFile + `: the bcrypt hash of
each password, one line per identity (DEMARCHE_NATS_<IDENTITY>_PASSWORD:
"<hash>"), the file deploy/nats/authorization.conf includes: give it to the
NATS servers beside their authorization.conf. A hash still matching its
password is kept as it is.

--rotate IDENTITY (repeatable) gives that identity a new password: a new
<identity>.creds and its new hash, both files rewritten in place (a
file bind-mounted into a container sees the change). Then reload
the NATS servers (nats-server --signal reload, one after the other): they read
the hash files again, refuse the old password and accept the new one; other
identities' connections are not touched. The service connected as IDENTITY
reads its credentials file again when it reconnects, so it comes back with the
new password by itself, without a restart (docs/operations.md, rotation).

Also write, in --dir/temporal-credentials, one Temporal API key per Temporal
identity (<identity>.key) and key-hashes, the file "demarche temporal-server
--key-hashes" reads.

--rotate-temporal IDENTITY (repeatable) starts the rotation of that identity's
Temporal API key: the key moves to <identity>.key.old, a new <identity>.key is
made, and key-hashes lists both. Restart the Temporal server (it takes either
key), then the service (it reads its new key). --retire-temporal IDENTITY ends
it: the old key and its hash go; restart the Temporal server, which then
refuses the old key (docs/operations.md, rotation; TestTemporalKeyRotation).`,
		Example: `  demarche admin credentials --dir deploy/compose/secrets
  demarche admin credentials --dir deploy/compose/secrets --rotate eventlog && nats-server --signal reload
  demarche admin credentials --dir deploy/compose/secrets --rotate-temporal worker     # then restart Temporal, then the worker
  demarche admin credentials --dir deploy/compose/secrets --retire-temporal worker     # then restart Temporal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, r := range rotate {
				id := natsauth.Identity(r)
				known := slices.Contains(natsauth.Identities, id) || slices.Contains(natsauth.DeployIdentities(), id)
				if err := id.Check(); err != nil || !known {
					return fmt.Errorf("--rotate %q: not an identity of deploy/nats/authorization.conf (e.g. worker, eventlog, operator, partner-AU, signals-acled)", r)
				}
			}
			creds, err := natsauth.Ensure(dir, natsauth.DeployIdentities()...)
			if err != nil {
				return err
			}
			for _, r := range rotate {
				c, err := natsauth.Rotate(dir, natsauth.Identity(r))
				if err != nil {
					return fmt.Errorf("--rotate %s: %w", r, err)
				}
				creds[c.Identity] = c
				fmt.Fprintf(app.Out, "rotated %s: new %s and its hash in %s; now reload the NATS servers (nats-server --signal reload)\n",
					r, natsauth.FileName(dir, c.Identity), natsauth.PasswordsFileName(dir))
			}
			if err := natsauth.WritePasswords(dir, creds); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "%d identities' credentials in %s; the servers' password hashes in %s\n", len(creds), dir, natsauth.PasswordsFileName(dir))
			if len(rotate) > 0 && len(rotateTemporal)+len(retireTemporal) == 0 {
				return nil // a NATS rotation touches NATS passwords only
			}
			// Temporal: an API key per identity, and their hashes for the server.
			tdir := filepath.Join(dir, temporalx.CredentialsDir)
			keys, err := temporalx.EnsureKeys(tdir)
			if err != nil {
				return err
			}
			for _, id := range rotateTemporal {
				if err := temporalx.RotateKey(tdir, id); err != nil {
					return fmt.Errorf("--rotate-temporal %s: %w", id, err)
				}
				fmt.Fprintf(app.Out, "rotating %s's Temporal key: new %s, the old one kept in %s; both in %s: restart the Temporal server, then %s; then --retire-temporal %s\n",
					id, temporalx.KeyFile(tdir, id), temporalx.OldKeyFile(tdir, id), filepath.Join(tdir, temporalx.KeyHashesFile), id, id)
			}
			for _, id := range retireTemporal {
				if err := temporalx.RetireKey(tdir, id); err != nil {
					return fmt.Errorf("--retire-temporal %s: %w", id, err)
				}
				fmt.Fprintf(app.Out, "retired %s's previous Temporal key: %s lists only the new one; restart the Temporal server\n", id, filepath.Join(tdir, temporalx.KeyHashesFile))
			}
			fmt.Fprintf(app.Out, "%d Temporal API keys in %s (<identity>.key: mount each into its own service only); the Temporal server's key hashes in %s\n",
				len(keys), tdir, filepath.Join(tdir, temporalx.KeyHashesFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "secrets", "folder for the credentials files")
	cmd.Flags().StringSliceVar(&rotate, "rotate", nil, "identity to give a new password (repeatable), e.g. --rotate eventlog; then reload the NATS servers")
	cmd.Flags().StringSliceVar(&rotateTemporal, "rotate-temporal", nil, "Temporal identity whose API key to rotate (repeatable): a new key, the old one still valid until --retire-temporal")
	cmd.Flags().StringSliceVar(&retireTemporal, "retire-temporal", nil, "Temporal identity whose previous API key to retire (repeatable), ending a --rotate-temporal")
	return cmd
}

func newAdminReadyCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "ready URL",
		Short:   "Exit 0 when a service's /readyz answers 200 (a container healthcheck without curl)",
		Example: "  demarche admin ready http://127.0.0.1:9090/readyz",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if err != nil {
				return fmt.Errorf("%s: read the answer: %w", args[0], err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %d %s", args[0], resp.StatusCode, strings.TrimSpace(string(b)))
			}
			fmt.Fprintln(app.Out, strings.TrimSpace(string(b)))
			return nil
		},
	}
}
