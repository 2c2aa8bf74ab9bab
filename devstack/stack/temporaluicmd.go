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
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/cli"
)

// NewTemporalUICmd is `demarche temporal-ui`: the Temporal Web UI of
// `demarche dev`, on its own, for a deployment: read-only, calling the
// frontend with the observer's (or an auditor's) API key, which the
// frontend's authorizer lets read and nothing more.
func NewTemporalUICmd(app *cli.App) *cobra.Command {
	var host, codecEndpoint string
	var port int
	cmd := &cobra.Command{
		Use:   "temporal-ui",
		Short: "Serve the Temporal Web UI, read-only, with the observer's Temporal API key",
		Long: `Serve the Temporal Web UI (the ui-server module demarche dev embeds) for the
frontend at --temporal-address, with the mTLS files of --temporal-tls-*. Every call
it makes carries the API key of --temporal-key-file (env DEMARCHE_TEMPORAL_KEY_FILE):
the observer's or an auditor's, so the UI reads and nothing more, whatever the
browser sends. It has no sign-in of its own: beyond loopback, put it behind one.`,
		Example: "  demarche temporal-ui --host 0.0.0.0 --port 8080 --temporal-address temporal:7233 --temporal-key-file /run/secrets/temporal-key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if app.TemporalKeyFile == "" {
				return fmt.Errorf("--temporal-key-file (env %s) is required: the frontend answers its identities' API keys only", temporalx.EnvKeyFile)
			}
			b, err := os.ReadFile(app.TemporalKeyFile)
			if err != nil {
				return fmt.Errorf("--temporal-key-file: %w", err)
			}
			key := strings.TrimSpace(string(b))
			if id := temporalx.KeyIdentity(key); id != temporalx.IdentityObserver && id != temporalx.IdentityAuditor {
				return fmt.Errorf("--temporal-key-file holds the key of %q: the UI reads as the observer or an auditor only", id)
			}
			opts := []temporalembed.UIOption{temporalembed.WithAPIKey(key), temporalembed.WithAnyHost()}
			if codecEndpoint != "" {
				opts = append(opts, temporalembed.WithCodecEndpoint(codecEndpoint))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ui, err := temporalembed.StartUI(host, port, "--port", app.TemporalAddress, app.Namespace, app.TemporalTLS, opts...)
			if err != nil {
				return err
			}
			app.Log.Info("temporal UI ready", zap.String("url", ui.URL()), zap.String("frontend", app.TemporalAddress),
				zap.String("identity", temporalx.KeyIdentity(key)))
			<-ctx.Done()
			ui.Stop()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "host", "127.0.0.1", "address the UI listens on")
	f.IntVar(&port, "port", DefaultUIPort, "UI port")
	f.StringVar(&codecEndpoint, "codec-endpoint", "", "the gateway's codec endpoint (https://<gateway>/v1/codec/<namespace>), to show decrypted payloads to signed-in auditors")
	return cmd
}
