package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/roster"
)

// FundsPendingFile, in a data folder, says that the demo funds are still to
// be opened: written when `demarche dev` creates the folder, removed once
// they are open. Only a folder with it gets funds opened: a restored folder,
// or one whose ledger vanished, never does.
const FundsPendingFile = "demo-funds-pending"

const fundsPendingText = "demarche dev created this data folder and opens its demo funds once (recorded on the audit chain);\n" +
	"this file is removed when they are open. Never copy it into a restored folder.\n"

// DemoFundsFile and DemoRosterFile, in a data folder, are the demo funds and
// roster the stack runs with, written at each start for the services run on
// their own beside it (--without; serve funding --funds, serve roster --roster).
const (
	DemoFundsFile  = "demo-funds.yaml"
	DemoRosterFile = "demo-roster.json"
)

func (s *Stack) writeDemoFiles() error {
	for name, data := range map[string][]byte{DemoFundsFile: funding.DemoFundsYAML(), DemoRosterFile: roster.DemoRosterJSON()} {
		if err := os.WriteFile(filepath.Join(s.cfg.DataDir, name), data, 0o644); err != nil {
			return fmt.Errorf("data folder %s: %w", s.cfg.DataDir, err)
		}
	}
	return nil
}

func (s *Stack) fundsPendingFile() string { return filepath.Join(s.cfg.DataDir, FundsPendingFile) }

// isNewDataFolder: the folder holds no engine state yet, neither a
// JetStream store nor a Temporal database (other files, such as the codec
// key `demarche dev` makes first, do not count).
func isNewDataFolder(dir string) bool {
	for _, state := range []string{"nats", "temporal.db"} {
		if _, err := os.Stat(filepath.Join(dir, state)); !errors.Is(err, os.ErrNotExist) {
			return false
		}
	}
	return true
}

// openDemoFunds opens the demo funds when the folder says they are pending,
// as the provisioner, recorded in each opening line and on the audit chain.
func (s *Stack) openDemoFunds(ctx context.Context, log *zap.Logger) error {
	if _, err := os.Stat(s.fundsPendingFile()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if !s.cfg.runs("audit") {
		return fmt.Errorf("a new data folder's demo funds are opened on the audit chain: the first start of %s must run the audit service (not --without audit)", s.cfg.DataDir)
	}
	nc, _, err := natsx.Connect(s.NATSURLFor(natsauth.Provisioner), "demarche-dev-open-funds", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, f := range funding.DemoFunds() {
		if _, err := funding.OpenFund(octx, nc, f, "demarche dev, new data folder "+s.cfg.DataDir+": demo fund", log); err != nil {
			return fmt.Errorf("demarche dev: open demo fund %s: %w", f.GetId(), err)
		}
	}
	if err := os.Remove(s.fundsPendingFile()); err != nil {
		return fmt.Errorf("demarche dev: %w", err)
	}
	return nil
}
