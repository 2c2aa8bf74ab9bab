package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// loadCodec is the process's payload codec keyring, from the flags: the key
// files (--codec-key, --codec-old-key), else a keyring file
// (--codec-keyring), else the data folder's keyring or key (`demarche dev`),
// else none.
func (app *App) loadCodec() (*payloadcodec.Keyring, error) {
	if app.CodecKeyFile != "" {
		if app.CodecKeyringFile != "" {
			return nil, fmt.Errorf("%s and %s: give one (the keyring file names the active key)", payloadcodec.FlagKey, payloadcodec.FlagKeyring)
		}
		return payloadcodec.LoadKeyring(app.CodecKeyFile, app.CodecOldKeyFiles)
	}
	if app.CodecKeyringFile != "" {
		ring, err := payloadcodec.LoadKeyringFile(app.CodecKeyringFile, app.CodecOldKeyFiles)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", payloadcodec.FlagKeyring, err)
		}
		return ring, nil
	}
	data := EnvOr("DEMARCHE_DATA_DIR", ".demarche")
	if ring := filepath.Join(data, payloadcodec.DevKeyringFile); exists(ring) {
		return payloadcodec.LoadKeyringFile(ring, app.CodecOldKeyFiles)
	}
	keyFile := ""
	if def := filepath.Join(data, payloadcodec.DevKeyFile); exists(def) { // a data folder from before keyrings
		keyFile = def
	}
	return payloadcodec.LoadKeyring(keyFile, app.CodecOldKeyFiles)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newCodecRotateCmd is `demarche codec rotate`: a new active key in a keyring file.
func newCodecRotateCmd(app *App) *cobra.Command {
	var keyring, id string
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new active payload codec key in a keyring file, keeping the old keys for decryption",
		Long: `Make a new key (a key file, mode 0600, in codec-keys/ beside the keyring file),
make it the keyring's active key and keep the previous active key among the
old ones. Then restart the processes that read the keyring (a plain restart:
` + "`demarche dev`" + ` reads its data folder's keyring; services read --codec-keyring):
new payloads are encrypted under the new key, histories written before still
decrypt and replay with the old ones.

--keyring is the keyring file: by default the data folder's
(DEMARCHE_DATA_DIR or .demarche)/codec-keyring.json. A dev data folder made
before keyrings (codec-key.json alone) gets its keyring here, the old key
kept. Never remove an old key from a keyring while histories it encrypted are
kept (Temporal's retention, archives, exported evidence bundles).`,
		Example: `  demarche codec rotate                       # demarche dev's data folder, then restart demarche dev
  demarche codec rotate --keyring /etc/demarche/codec/codec-keyring.json --id 2026-12
  demarche serve worker --codec-keyring /etc/demarche/codec/codec-keyring.json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if keyring == "" {
				keyring = filepath.Join(EnvOr("DEMARCHE_DATA_DIR", ".demarche"), payloadcodec.DevKeyringFile)
			}
			k, err := payloadcodec.RotateKeyringFile(keyring, id)
			if err != nil {
				return err
			}
			ring, err := payloadcodec.LoadKeyringFile(keyring, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "codec key %s is now active in %s (keys: %v); restart the processes that read it\n", k.ID, keyring, ring.IDs())
			return nil
		},
	}
	cmd.Flags().StringVar(&keyring, "keyring", "", "the keyring file (default: the data folder's codec-keyring.json)")
	cmd.Flags().StringVar(&id, "id", "", "the new key's id, written in every payload it encrypts (default: today's date and a random suffix)")
	return cmd
}
