package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// SettlePlatform starts the whole platform on a restored data folder, on
// free loopback ports and without the UI, for `demarche admin restore`'s
// settle step (cli.DevPlatform): it returns the gateway's address, the
// folder's demo auditor's token and how to stop it. The folder's own codec
// key decrypts its histories (none: it was made with --no-codec). The folder
// holds its JetStream store, so it is not a new data folder: no fund is opened.
func SettlePlatform(ctx context.Context, dataDir string, log *zap.Logger) (string, string, func(), error) {
	var codec *payloadcodec.Keyring
	keyFile := filepath.Join(dataDir, payloadcodec.DevKeyFile)
	if _, err := os.Stat(keyFile); err == nil {
		if codec, err = payloadcodec.LoadKeyring(keyFile, nil); err != nil {
			return "", "", nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nats")); err != nil {
		return "", "", nil, fmt.Errorf("%s holds no JetStream store: not a restored data folder (%w)", dataDir, err)
	}
	s, err := Start(ctx, Config{DataDir: dataDir, NoUI: true, TemporalLogLevel: "error", Codec: codec}, log)
	if err != nil {
		return "", "", nil, err
	}
	token, err := os.ReadFile(s.TokenFile("auditor"))
	if err != nil {
		s.Stop()
		return "", "", nil, fmt.Errorf("the demo auditor's token: %w", err)
	}
	return s.APIURL(), strings.TrimSpace(string(token)), s.Stop, nil
}
