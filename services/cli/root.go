// Package cli is the `demarche` command line: operator, auditor and service
// commands. The `dev` command that embeds the servers is added by the devstack
// module, so this package never imports the Temporal server.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/logging"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/temporalx"
)

// Defaults shared by the CLI and `demarche dev`.
const (
	DefaultNATSURL         = "nats://127.0.0.1:4222"
	DefaultTemporalAddress = "127.0.0.1:7233"
)

// App holds what every command needs: connection settings and the logger.
type App struct {
	NATSURL         string
	TemporalAddress string
	Namespace       string
	// Server and Token reach the gateway, the operator verbs' one door.
	Server    string
	Token     string
	logLevel  string
	logFormat string
	natsCreds string
	// TLS to NATS (set into the environment natsx.Connect reads).
	natsCA, natsCert, natsKey string
	// TemporalTLS are the mTLS files every Temporal client of the process
	// presents (empty: plaintext, for demarche dev's loopback frontend).
	TemporalTLS temporalx.TLSFiles
	// TemporalKeyFile is this process's Temporal API key (one identity);
	// unset, demarche dev's folder of keys in the data folder, if any.
	TemporalKeyFile string
	// Codec encrypts the payloads every Temporal client of the process
	// sends and decrypts those it reads (nil: no key given).
	Codec *payloadcodec.Keyring
	// CodecKeyFile and CodecOldKeyFiles are the key files the flags named.
	CodecKeyFile     string
	CodecKeyringFile string
	CodecOldKeyFiles []string
	// metricsAddr and pprofAddr: where `demarche serve` serves /metrics and pprof.
	metricsAddr, pprofAddr string
	// otlpEndpoint: where `demarche serve` exports its spans ("": nowhere).
	otlpEndpoint string
	// healthAddr: where `demarche serve` serves /healthz and /readyz;
	// serving: the name of the service it runs.
	healthAddr, serving string

	Log *zap.Logger
	Out io.Writer
}

// NewRoot builds the `demarche` command with every subcommand; extra adds more
// (the devstack module adds `dev`).
func NewRoot(extra ...func(*App) *cobra.Command) *cobra.Command {
	app := &App{Out: os.Stdout}
	root := &cobra.Command{
		Use:   "demarche",
		Short: "Démarche: crisis-response orchestration for preventive diplomacy",
		Long: `Démarche drives each crisis, from early warning through good offices,
fact-finding, envoy deployment, rapid-response funding and sustained follow-up,
as a durable Temporal workflow, and publishes every step as a CloudEvent on NATS.

Start the whole platform on this machine with "demarche dev" (or "make run"),
then open a crisis from another terminal:

  demarche crisis open --title "Coup attempt" --country GN --type unconstitutional-change --severity 4
  demarche crisis list
  demarche events tail`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(app.logLevel, app.logFormat)
			if err != nil {
				return err
			}
			app.Log = log
			app.Out = cmd.OutOrStdout()
			creds := app.natsCreds
			if creds == "" { // `demarche dev`'s operator credentials, when there are some in the data folder
				def := filepath.Join(dataDirOf(cmd), "nats-credentials", "operator.creds")
				if _, err := os.Stat(def); err == nil {
					creds = def
				}
			}
			if app.NATSURL, err = natsauth.WithCredentialsFile(app.NATSURL, creds); err != nil {
				return fmt.Errorf("--nats-creds: %w", err)
			}
			// TLS to NATS: every connection of this process (natsx.Connect) reads it.
			for env, v := range map[string]string{natsx.EnvCA: app.natsCA, natsx.EnvCert: app.natsCert, natsx.EnvKey: app.natsKey} {
				if v != "" {
					if err := os.Setenv(env, v); err != nil {
						return err
					}
				}
			}
			if _, err := natsx.TLSOptions(); err != nil {
				return fmt.Errorf("--nats-ca/--nats-cert/--nats-key: %w", err)
			}
			if err := app.TemporalTLS.Check(); err != nil {
				return err
			}
			temporalx.SetDefaultTLS(app.TemporalTLS)
			// Temporal API keys: the file given, else demarche dev's folder
			// of keys (each client picks its identity's), else the env.
			tcreds := temporalx.CredentialsFromEnv()
			if app.TemporalKeyFile != "" {
				tcreds = temporalx.Credentials{KeyFile: app.TemporalKeyFile}
			} else if tcreds.Dir == "" {
				def := filepath.Join(EnvOr("DEMARCHE_DATA_DIR", ".demarche"), temporalx.CredentialsDir)
				if _, err := os.Stat(def); err == nil {
					tcreds.Dir = def
				}
			}
			temporalx.SetDefaultCredentials(tcreds)
			if app.Codec, err = app.loadCodec(); err != nil {
				return err
			}
			temporalx.SetDefaultCodec(app.Codec)
			return nil
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&app.NATSURL, "nats-url", EnvOr("DEMARCHE_NATS_URL", DefaultNATSURL), "NATS server URL (env DEMARCHE_NATS_URL)")
	f.StringVar(&app.natsCreds, "nats-creds", os.Getenv("DEMARCHE_NATS_CREDS"), "NATS credentials file, <user>:<password> (env DEMARCHE_NATS_CREDS; default: demarche dev's operator credentials in the data folder, if any)")
	f.StringVar(&app.natsCA, "nats-ca", "", "CA file that signed the NATS server's certificate: connect over TLS (env "+natsx.EnvCA+")")
	f.StringVar(&app.natsCert, "nats-cert", "", "client certificate for NATS servers that verify clients (env "+natsx.EnvCert+"; with --nats-key)")
	f.StringVar(&app.natsKey, "nats-key", "", "the client certificate's key (env "+natsx.EnvKey+")")
	f.StringVar(&app.TemporalAddress, "temporal-address", EnvOr("DEMARCHE_TEMPORAL_ADDRESS", DefaultTemporalAddress), "Temporal frontend host:port (env DEMARCHE_TEMPORAL_ADDRESS)")
	f.StringVar(&app.TemporalTLS.CertFile, "temporal-tls-cert", os.Getenv(temporalx.EnvTLSCert), "mTLS: this process's client certificate (PEM) for Temporal (env "+temporalx.EnvTLSCert+"; with --temporal-tls-key and --temporal-tls-ca)")
	f.StringVar(&app.TemporalTLS.KeyFile, "temporal-tls-key", os.Getenv(temporalx.EnvTLSKey), "mTLS: the certificate's private key (PEM) (env "+temporalx.EnvTLSKey+")")
	f.StringVar(&app.TemporalTLS.CAFile, "temporal-tls-ca", os.Getenv(temporalx.EnvTLSCA), "mTLS: the CA that signed the Temporal frontend's certificate (PEM) (env "+temporalx.EnvTLSCA+")")
	f.StringVar(&app.TemporalTLS.ServerName, "temporal-tls-server-name", os.Getenv(temporalx.EnvTLSServerName), "mTLS: the name on the frontend's certificate (env "+temporalx.EnvTLSServerName+"; default: the host of --temporal-address)")
	f.StringVar(&app.TemporalKeyFile, "temporal-key-file", os.Getenv(temporalx.EnvKeyFile), "Temporal API key of this process's identity (\"<identity>.<secret>\"; env "+temporalx.EnvKeyFile+"; default: demarche dev's keys in the data folder, if any)")
	f.StringVar(&app.CodecKeyFile, "codec-key", os.Getenv(payloadcodec.EnvKey), "payload codec: the active key file; Temporal payloads are encrypted with it (AES-256-GCM) and decrypted (env "+payloadcodec.EnvKey+"; default: demarche dev's key in the data folder, if any)")
	f.StringVar(&app.CodecKeyringFile, "codec-keyring", os.Getenv(payloadcodec.EnvKeyring), "payload codec: a keyring file naming the active key file and the older ones (`demarche codec rotate` writes it); every process reads the same one, so a rotation needs a restart only (env "+payloadcodec.EnvKeyring+"; default: demarche dev's keyring in the data folder, if any)")
	f.StringSliceVar(&app.CodecOldKeyFiles, "codec-old-key", splitList(os.Getenv(payloadcodec.EnvOldKeys)), "payload codec: an older key file, kept to decrypt histories written before a rotation (repeatable; env "+payloadcodec.EnvOldKeys+", comma-separated)")
	f.StringVar(&app.Namespace, "namespace", EnvOr("DEMARCHE_NAMESPACE", temporalx.DefaultNamespace), "Temporal namespace (env DEMARCHE_NAMESPACE)")
	f.StringVar(&app.Server, "server", EnvOr("DEMARCHE_SERVER", ""), "the gateway's address for operator commands (env DEMARCHE_SERVER; default: the one \"demarche login\" stored, else "+DefaultServer+")")
	f.StringVar(&app.Token, "token", EnvOr("DEMARCHE_TOKEN", ""), "bearer token for the gateway (env DEMARCHE_TOKEN; default: the one \"demarche login\" stored). Without --server it goes to the server \"demarche login\" stored, else "+DefaultServer)
	f.StringVar(&app.logLevel, "log-level", EnvOr("DEMARCHE_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env DEMARCHE_LOG_LEVEL)")
	f.StringVar(&app.logFormat, "log-format", EnvOr("DEMARCHE_LOG_FORMAT", "console"), "log format: console or json (env DEMARCHE_LOG_FORMAT)")

	root.AddCommand(newLoginCmd(app), newWhoamiCmd(app), newLogoutCmd(app), newCrisisCmd(app), newEventsCmd(app), newServeCmd(app), newPlaybookCmd(app), newRosterCmd(app), newFundCmd(app), newWarningCmd(app), newExerciseCmd(app), newPartnerCmd(app), newAuditCmd(app), newCodecCmd(app), newAdminCmd(app))
	for _, add := range extra {
		root.AddCommand(add(app))
	}
	root.AddCommand(newVersionCmd(app))
	return root
}

// Execute runs the root command and prints the error, if any, once.
func Execute(root *cobra.Command) int {
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// dataDirOf is the demarche dev data folder a command is pointed at: its own
// --data-dir flag when it has one (events tail, login, ...), else
// DEMARCHE_DATA_DIR, else .demarche. The default NATS credentials are looked
// for there, so a command pointed at another data folder connects with that
// folder's credentials, not with those of the folder it runs in.
func dataDirOf(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("data-dir"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return EnvOr("DEMARCHE_DATA_DIR", ".demarche")
}

// EnvOr returns the environment variable name, or def when it is unset.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// splitList splits a comma-separated environment value ("": none).
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// outputFlag is the one flag every read verb takes: --output table|json.
type outputFlag string

func (o *outputFlag) bind(cmd *cobra.Command) {
	*o = "table"
	cmd.Flags().StringVarP((*string)(o), "output", "o", "table", "table for people, json for programs")
}

// render prints v as JSON when --output json asked for it (proto messages in
// the API's style), else runs table.
func (a *App) render(o outputFlag, v any, table func() error) error {
	asJSON, err := o.json()
	if err != nil {
		return err
	}
	if asJSON {
		return a.printJSON(v)
	}
	return table()
}

// protoList is a list of messages as one JSON object {key: [...]}, each in
// the API's style (for --output json of lists that have no message of their own).
func protoList[M proto.Message](key string, ms []M) (map[string]any, error) {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		b, err := apijson.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return map[string]any{key: out}, nil
}

// json reports whether JSON was asked for; an unknown format is an error.
func (o outputFlag) json() (bool, error) {
	switch o {
	case "table", "text", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("--output: %q is not a format (allowed: table, json)", string(o))
}

// printJSON writes v as indented JSON: proto messages in the HTTP API's one
// style (pkg/apijson), so --output json reads like the API's answers.
func (a *App) printJSON(v any) error {
	var b []byte
	var err error
	if m, ok := v.(proto.Message); ok {
		b, err = apijson.MarshalIndent(m)
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(a.Out, string(b))
	return nil
}
