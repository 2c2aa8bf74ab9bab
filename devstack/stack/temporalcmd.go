package stack

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/cli"
)

// NewTemporalServerCmd is `demarche temporal-server`: the Temporal server,
// built from the go.temporal.io/server module this binary embeds for
// `demarche dev`, on PostgreSQL. It is the production engine of the
// deployment descriptions (deploy/compose) and of the multi-process cluster
// test; an operator may run the upstream temporalio/server image instead,
// with the same databases.
func NewTemporalServerCmd(app *cli.App) *cobra.Command {
	var opts temporalembed.Options
	pg := temporalembed.Postgres{}
	var passwordFile, pprofAddr string
	cmd := &cobra.Command{
		Use:   "temporal-server",
		Short: "Run a Temporal server on PostgreSQL (production engine; schema set up by the server's own tool)",
		Long: `Run a Temporal server (frontend, history, matching, worker services in one
process) on PostgreSQL. On start it creates the two databases when missing and
brings their schemas to this server's version with Temporal's own schema tool
(temporal-sql-tool setup-schema and update-schema, from the embedded schemas):
restarting or upgrading it is safe.

The namespace and Démarche's search attributes are not created here: run
"demarche admin provision" once the server answers.

Every caller presents its identity's API key ("Authorization: Bearer <key>"):
--key-hashes names the file of the keys' SHA-256 ("<identity> <hex>" lines;
"demarche admin credentials" writes it with the keys), and the authorizer lets
each identity do what it needs only (docs/operations.md has the table).

Without --tls-* files the frontend listens on a loopback address only.`,
		Example: "  demarche temporal-server --postgres-host db --postgres-user temporal --postgres-password-file /run/secrets/temporal-db \\\n    --host 0.0.0.0 --tls-cert temporal.pem --tls-key temporal-key.pem --tls-ca ca.pem \\\n    --key-hashes /run/secrets/temporal-credentials/key-hashes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("--postgres-password-file: %w", err)
				}
				pg.Password = strings.TrimSpace(string(b))
			} else {
				pg.Password = os.Getenv("DEMARCHE_TEMPORAL_POSTGRES_PASSWORD")
			}
			opts.Postgres = &pg
			opts.PortFlag, opts.HTTPPortFlag = "--port", "--http-port"
			opts.HTTPAPI = opts.HTTPPort != 0
			if opts.KeyHashesFile == "" {
				return fmt.Errorf("--key-hashes (env %s) is required: the frontend authorizes every caller by its API key (demarche admin credentials writes the file)", temporalx.EnvKeyHashesFile)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// As demarche serve's: where the server's time goes (demarche
			// bench --profile --service-pprof reads it).
			_, stopPprof, err := metrics.Serve(pprofAddr, true)
			if err != nil {
				return fmt.Errorf("--pprof-listen: %w", err)
			}
			defer stopPprof()
			srv, err := temporalembed.Start(opts, app.Log)
			if err != nil {
				return err
			}
			app.Log.Info("temporal server ready", zap.String("frontend", srv.HostPort()), zap.Int("http_port", srv.HTTPPort()),
				zap.String("postgres", fmt.Sprintf("%s:%d", pg.Host, pg.Port)))
			<-ctx.Done()
			app.Log.Info("stopping temporal server")
			return srv.Stop()
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Host, "host", "127.0.0.1", "address the frontend listens on (not loopback: needs --tls-*)")
	f.IntVar(&opts.Port, "port", DefaultTemporalPort, "frontend gRPC port")
	f.IntVar(&opts.HTTPPort, "http-port", DefaultTemporalHTTPPort, "frontend HTTP API port (same authorization as gRPC; 0 turns it off)")
	f.StringVar(&opts.KeyHashesFile, "key-hashes", os.Getenv(temporalx.EnvKeyHashesFile), "file of the Temporal identities' API key hashes (env "+temporalx.EnvKeyHashesFile+"; required)")
	f.Int32Var(&opts.HistoryShards, "history-shards", 4, "history shards: fixed for the life of the database")
	f.StringVar(&pprofAddr, "pprof-listen", os.Getenv("DEMARCHE_PPROF_LISTEN"), "serve Go's /debug/pprof/ here (off unless set; env DEMARCHE_PPROF_LISTEN; keep it private)")
	f.StringVar(&opts.LogLevel, "temporal-log-level", "warn", "the server's log level: debug, info, warn, error")
	f.StringVar(&pg.Host, "postgres-host", "127.0.0.1", "PostgreSQL host")
	f.IntVar(&pg.Port, "postgres-port", 5432, "PostgreSQL port")
	f.StringVar(&pg.User, "postgres-user", "temporal", "PostgreSQL user (may create databases, or the databases exist)")
	f.StringVar(&passwordFile, "postgres-password-file", "", "file holding the PostgreSQL password (default: env DEMARCHE_TEMPORAL_POSTGRES_PASSWORD)")
	f.StringVar(&pg.Database, "database", "temporal", "database for histories and task queues")
	f.StringVar(&pg.VisibilityDatabase, "visibility-database", "temporal_visibility", "database for visibility (crisis listings)")
	f.IntVar(&pg.MaxConns, "postgres-max-conns", 20, "connections per database")
	f.StringVar(&opts.TLS.CertFile, "tls-cert", "", "mTLS: the server's certificate (PEM)")
	f.StringVar(&opts.TLS.KeyFile, "tls-key", "", "mTLS: its key (PEM)")
	f.StringVar(&opts.TLS.CAFile, "tls-ca", "", "mTLS: the CA of the server's and every client's certificate")
	f.StringVar(&opts.TLS.ServerName, "tls-server-name", "", "mTLS: the name on the server's certificate, which its own services check when they dial each other (default: --host; set it when --host is 0.0.0.0)")
	return cmd
}
