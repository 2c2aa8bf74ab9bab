package stack

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/pkg/tracing"
	"github.com/demarche/demarche/services/cli"
	"github.com/demarche/demarche/services/earlywarning"
)

// Default ports of `demarche dev`, the ones the CLI dials by default.
const (
	DefaultNATSPort         = 4222
	DefaultTemporalPort     = 7233
	DefaultTemporalHTTPPort = 7243
	DefaultUIPort           = 8233
	DefaultHTTPPort         = 8080
)

// NewDevCmd is the `demarche dev` command.
func NewDevCmd(app *cli.App) *cobra.Command {
	var natsDowntime time.Duration
	cfg := Config{NATSPortFlag: "--nats-port", TemporalPortFlag: "--temporal-port", TemporalHTTPPortFlag: "--temporal-http-port", UIPortFlag: "--ui-port", HTTPPortFlag: "--http-port"}
	var rulesPath string
	var noCodec bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole platform on this machine (embedded NATS and Temporal)",
		Long: `Run the whole platform in one process: an embedded NATS server with JetStream,
an embedded Temporal server on SQLite (namespace "demarche" with Démarche's search
attributes), the Temporal worker and the event log. Nothing to install, no Docker.

NATS and Temporal keep their data in --data-dir (default ./.demarche): stop with
Ctrl-C and start again, and the crises opened before are still there and still
running. Delete the folder to start afresh.

Temporal payloads (titles, decisions, rationales, activity errors) are
encrypted with the payload codec keyring DATA/codec-keyring.json (its first key
DATA/codec-key.json), made on first start; "demarche codec rotate" adds a key
(or --codec-key; --no-codec turns encryption off): the Temporal database holds
ciphertext only, and the Temporal UI decrypts through the gateway's codec
endpoint for an auditor signed in to the console. JetStream's files are
encrypted with DATA/nats-store.key, made on first start: keep it with the data.
The audit service signs chain heads, records and anchors with DATA/audit-signing.key
(made on first start, mode 0600, unless DEMARCHE_AUDIT_SIGNING_KEY(_FILE) names
one); "demarche audit verify" trusts its public key, DATA/audit-signing.pub.

--without leaves services out, to run them as their own processes with
"demarche serve NAME" (credentials in DATA/nats-credentials; the demo funds and
roster in DATA/demo-funds.yaml and DATA/demo-roster.json, for serve funding
--funds and serve roster --roster). SIGUSR1 restarts
the embedded NATS server (down for --nats-restart-downtime): the fault suite
(make chaos) uses it.`,
		Example: "  demarche dev\n  demarche dev --data-dir /tmp/demarche --nats-port 14222 --temporal-port 17233",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Namespace = app.Namespace
			rules, err := earlywarning.LoadRules(rulesPath)
			if err != nil {
				return fmt.Errorf("--warning-rules: %w", err)
			}
			cfg.EarlyWarning.Rules = rules
			if cfg.Codec, err = devCodec(app, cfg.DataDir, noCodec); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "starting Démarche (data in %s) ...\n", cfg.DataDir)
			s, err := Start(ctx, cfg, app.Log)
			if err != nil {
				return err
			}
			defer s.Stop()
			PrintBanner(app.Out, s)
			usr1 := make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			defer signal.Stop(usr1)
			for {
				select {
				case <-usr1:
					app.Log.Warn("SIGUSR1: restarting the embedded NATS server", zap.Duration("downtime", natsDowntime))
					if err := s.RestartNATS(natsDowntime, app.Log); err != nil {
						return err
					}
					app.Log.Info("NATS restarted", zap.String("url", s.NATSURL()))
					continue
				case <-ctx.Done():
				}
				break
			}
			app.Log.Info("stopping; data stays in the data folder", zap.String("data_dir", cfg.DataDir))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cli.EnvOr("DEMARCHE_DATA_DIR", ".demarche"), "folder for NATS and Temporal data (env DEMARCHE_DATA_DIR)")
	f.StringVar(&cfg.Host, "host", "127.0.0.1", "address the embedded servers listen on")
	f.IntVar(&cfg.NATSPort, "nats-port", DefaultNATSPort, "NATS client port")
	f.IntVar(&cfg.TemporalPort, "temporal-port", DefaultTemporalPort, "Temporal frontend gRPC port")
	f.BoolVar(&cfg.TemporalHTTP, "temporal-http", false, "serve the Temporal frontend's HTTP API (loopback only; every call needs an identity's API key, like gRPC)")
	f.IntVar(&cfg.TemporalHTTPPort, "temporal-http-port", DefaultTemporalHTTPPort, "Temporal frontend HTTP port (with --temporal-http)")
	f.IntVar(&cfg.HTTPPort, "http-port", DefaultHTTPPort, "HTTP API port (services/gateway)")
	f.StringVar(&cfg.PublicURL, "public-url", "", "the gateway's address for people when not http://127.0.0.1 or localhost on --http-port (it answers to no other host name: DNS rebinding)")
	f.IntVar(&cfg.UIPort, "ui-port", DefaultUIPort, "Temporal Web UI port (read-only, for auditors)")
	f.BoolVar(&cfg.NoUI, "no-ui", false, "do not serve the Temporal Web UI")
	f.StringSliceVar(&cfg.Without, "without", nil, "services to leave out, run on their own with demarche serve ("+strings.Join(Services, ", ")+")")
	f.DurationVar(&natsDowntime, "nats-restart-downtime", 3*time.Second, "how long NATS stays down when SIGUSR1 restarts it")
	f.StringVar(&cfg.MetricsAddr, "metrics-listen", "127.0.0.1:9464", "serve Prometheus /metrics here (\"\" turns it off)")
	f.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", cli.OTLPEndpointFromEnv(), "export traces over OTLP/gRPC to this collector, each service as service.name demarche-<service>: "+tracing.EndpointHelp+" (off unless set; env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)")
	f.StringVar(&cfg.PprofAddr, "pprof-listen", "", "serve Go's /debug/pprof/ here (off unless set, e.g. 127.0.0.1:6060)")
	f.StringVar(&cfg.TemporalLogLevel, "temporal-log-level", "warn", "log level of the embedded Temporal server (it is chatty at info)")
	f.BoolVar(&noCodec, "no-codec", false, "do not encrypt Temporal payloads (the codec key in the data folder is neither made nor used)")
	f.StringVar(&rulesPath, "warning-rules", "", "early-warning rules file (default: the embedded rules; see demarche warning rules show); rules applied with warning rules apply, kept in the data folder, take precedence")
	var tlsFiles natsembed.TLSFiles
	f.StringVar(&tlsFiles.Cert, "nats-tls-cert", "", "serve NATS over TLS only, with this certificate (PEM; with --nats-tls-key and --nats-tls-ca)")
	f.StringVar(&tlsFiles.Key, "nats-tls-key", "", "the NATS server certificate's key (PEM)")
	f.StringVar(&cfg.NATSTLSCA, "nats-tls-ca", "", "the CA that signed the NATS server certificate; clients pass it with --nats-ca")
	f.StringVar(&tlsFiles.ClientCA, "nats-tls-client-ca", "", "require client certificates signed by this CA (mutual TLS)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if tlsFiles.Cert != "" || tlsFiles.Key != "" {
			cfg.NATSTLS = &tlsFiles
		}
		return nil
	}
	return cmd
}

// devCodec is the keyring of `demarche dev`: the --codec-key or
// --codec-keyring given, else the data folder's keyring file (made on first
// start around the folder's key; `demarche codec rotate` adds keys to it, so a
// plain restart after a rotation still decrypts old histories), with any
// --codec-old-key.
func devCodec(app *cli.App, dataDir string, off bool) (*payloadcodec.Keyring, error) {
	if off {
		return nil, nil
	}
	if app.CodecKeyFile != "" || app.CodecKeyringFile != "" {
		return app.Codec, nil
	}
	return DevKeyring(dataDir, app.CodecOldKeyFiles)
}

// DevKeyring is the keyring a plain `demarche dev` uses in dataDir: its
// keyring file, made on first start.
func DevKeyring(dataDir string, extraOld []string) (*payloadcodec.Keyring, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data folder %s: %w", dataDir, err)
	}
	path, err := payloadcodec.EnsureDevKeyring(dataDir)
	if err != nil {
		return nil, err
	}
	return payloadcodec.LoadKeyringFile(path, extraOld)
}

// PrintBanner tells, once the stack is ready, where everything is and how to use it.
func PrintBanner(w io.Writer, s *Stack) {
	self := "demarche"
	if strings.Contains(os.Args[0], "/") && !strings.Contains(os.Args[0], "go-build") {
		self = os.Args[0]
	}
	var server, tail, dataFlag string
	if s.APIURL() != cli.DefaultServer {
		server = " --server " + s.APIURL()
	}
	if s.NATSURL() != cli.DefaultNATSURL {
		tail = " --nats-url " + s.NATSURL()
	}
	if filepath.Clean(s.DataDir()) != ".demarche" {
		dataFlag = " --data-dir " + s.DataDir()
		tail += " --nats-creds " + s.CredentialsFile(natsauth.Operator)
	}
	var ids strings.Builder
	for _, id := range authn.DevIdentities {
		fmt.Fprintf(&ids, "  %-9s %s\n", id.Subject, id.About)
	}
	fmt.Fprintf(w, `
Démarche is running. Data folder: %s

  NATS      %s   (one user per service, partner organisation and signal source; credentials in %s)
            JetStream stream %s, subjects %s.<region>.<country>.<crisis-id>.<event>
  Temporal  %s   namespace %s   (%s)
            every caller presents its identity's API key; keys in %s
  UI        %s   (Temporal Web UI, read-only)
  Codec     %s
  HTTP API  %s   (every /v1 route needs a bearer token; see services/gateway)
  Metrics   %s   (Prometheus; --pprof-listen adds /debug/pprof/)
  Console   %s/   (operations centre; dev sign-in: %s/console/signin)

Demo identities (tokens in %s, issued by this data folder's dev issuer):
%s
From another terminal, sign in as one, then work as that identity:
  %s login%s%s --as duty
  %s crisis open --title "Coup attempt" --country GN --type unconstitutional-change --severity 4 --drill
  %s crisis list
  %s crisis show CRISIS-ID      what it waits for, who may decide, deadlines, figures
  %s events tail%s
  curl -H "Authorization: Bearer $(cat %s)" %s/v1/crises

With standard tools (read-only observer credential; events tail uses the operator's, in the same folder;
the auditor's Temporal API key, read-only):
  nats --server '%s' --inbox-prefix %s sub '%s'
  temporal workflow list --address %s --namespace %s --tls=false --api-key "$(cat %s)"

Ctrl-C stops the platform; crises survive for the next start.
`, s.DataDir(), s.NATSURL(), filepath.Dir(s.CredentialsFile(natsauth.Observer)), eventbus.StreamName, eventbus.SubjectRoot,
		s.TemporalAddress(), s.Namespace(), httpAPILine(s), filepath.Dir(s.TemporalKeyFile(temporalx.IdentityAuditor)), uiLine(s), codecLine(s), s.APIURL(), metricsLine(s), s.APIURL(), s.APIURL(),
		s.AuthDir(), ids.String(),
		self, server, dataFlag, self, self, self, self, tail, s.TokenFile("duty"), s.APIURL(),
		s.NATSURLFor(natsauth.Observer), natsauth.InboxPrefix(natsauth.Observer), eventbus.AllEvents(), s.TemporalAddress(), s.Namespace(), s.TemporalKeyFile(temporalx.IdentityAuditor))
}

func httpAPILine(s *Stack) string {
	if s.TemporalHTTPPort() == 0 {
		return "HTTP API off; --temporal-http serves it"
	}
	return fmt.Sprintf("HTTP API on 127.0.0.1:%d, same API keys", s.TemporalHTTPPort())
}

func metricsLine(s *Stack) string {
	if s.MetricsURL() == "" {
		return "(off)"
	}
	return s.MetricsURL() + "/metrics"
}

func codecLine(s *Stack) string {
	if s.CodecEndpoint() == "" {
		return "off: Temporal payloads are stored in clear (--no-codec)"
	}
	return "Temporal payloads encrypted at rest (key " + s.cfg.Codec.ActiveID() + " in " + filepath.Join(s.DataDir(), payloadcodec.DevKeyFile) +
		" unless --codec-key)\n            the UI decrypts them via " + s.CodecEndpoint() + " for an auditor signed in to the console"
}

func uiLine(s *Stack) string {
	if s.UIURL() == "" {
		return "(off)"
	}
	return s.UIURL()
}
