package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// newCodecCmd is `demarche codec`: the payload codec's keys.
func newCodecCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "codec",
		Short: "Payload codec keys: Temporal payloads encrypted at rest (AES-256-GCM)",
		Long: `With a codec key, every Temporal client of Démarche (worker, gateway, early
warning, partners, the CLI) encrypts the payloads it sends the Temporal server
(crisis titles, decisions, rationales, activity errors) and decrypts what it
reads back: the Temporal database and its operators see ciphertext only.

Rotation: with a keyring file (--codec-keyring; demarche dev's data folder
has one), "demarche codec rotate" makes a new active key and keeps the old
ones, and a plain restart of every process takes it. With key files: make a
new key, restart every process with --codec-key NEW and --codec-old-key OLD
(repeatable). Either way new payloads go under the new key and old histories
still decrypt and replay. Never delete an old key while histories it
encrypted are kept (retention, archives, exported evidence bundles).`,
	}
	var out, id string
	newKey := &cobra.Command{
		Use:   "new-key",
		Short: "Make a new key file (mode 0600; an existing file is never overwritten)",
		Example: `  demarche codec new-key --out /run/secrets/demarche-codec-2026-11.json --id 2026-11
  demarche serve worker --codec-key /run/secrets/demarche-codec-2026-11.json --codec-old-key /run/secrets/demarche-codec-2026-05.json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return fmt.Errorf("--out: say where to write the key file")
			}
			if id == "" {
				id = payloadcodec.NewKeyID("")
			}
			k, err := payloadcodec.GenerateKey(id)
			if err != nil {
				return err
			}
			if err := payloadcodec.WriteKeyFile(out, k); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "wrote codec key %s to %s\n", k.ID, out)
			return nil
		},
	}
	newKey.Flags().StringVar(&out, "out", "", "the key file to write")
	newKey.Flags().StringVar(&id, "id", "", "the key's id, written in every payload it encrypts (default: today's date and a random suffix)")
	cmd.AddCommand(newKey, newCodecRotateCmd(app))
	return cmd
}
