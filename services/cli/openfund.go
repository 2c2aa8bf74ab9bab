package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

func newAdminOpenFundCmd(app *App) *cobra.Command {
	var fundsFile, reason string
	var ids []string
	var all bool
	cmd := &cobra.Command{
		Use:   "open-fund",
		Short: "Open a configured fund: write its opening line, once, and record the act on the audit chain",
		Long: `Open a fund of the funds file: write its opening line (line 1 of its ledger:
the opening balance, when, and who opened it) and have the audit service record
the act on the global chain (event type fund-opened: which fund, which balance,
who). It runs as the provisioner, the only NATS identity allowed to write an
opening line or to ask audit to record one, so the audit record's principal
comes from the credentials (--nats-creds provisioner.creds), and the opening
line says which NATS user, which person on which machine, and why (--reason).

A fund is opened once. Opening it again with the same balance writes nothing
and records the act again (safe to retry after a lost answer); with another
balance it is refused. A fund whose ledger has gone (it was opened before) is
never re-opened: restore the ledger from a backup.

Open every fund of the file before starting the funding service with it: a
funding service that finds a configured fund without a ledger refuses to start
and raises the alarm. The audit service must be running.`,
		Example: `  demarche admin open-fund --funds funds.yaml --fund emergency-response \
    --reason "board decision 2026-12-01" --nats-url nats://nats-1:4222 --nats-creds /run/secrets/provisioner.creds
  demarche admin open-fund --funds funds.yaml --all --reason "first deployment"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fundsFile == "" {
				return errors.New("--funds FILE is required: the funds file the funding service runs with (see deploy/funds.example.yaml)")
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: why the fund is opened (a decision, a ticket), recorded in its opening line")
			}
			if all == (len(ids) > 0) {
				return errors.New("say which funds to open: --fund ID (repeatable) or --all")
			}
			funds, err := funding.LoadFunds(fundsFile)
			if err != nil {
				return fmt.Errorf("--funds: %w", err)
			}
			chosen, err := chooseFunds(funds, ids, all, fundsFile)
			if err != nil {
				return err
			}
			natsURL, err := app.provisionerURL()
			if err != nil {
				return err
			}
			if who := natsUser(natsURL); who != natsauth.Provisioner.User() {
				if who == "" {
					who = "no NATS user (no credentials)"
				}
				return fmt.Errorf("open-fund runs as the provisioner (%s), not as %s: pass --nats-creds provisioner.creds", natsauth.Provisioner.User(), who)
			}
			nc, _, err := natsx.Connect(natsURL, "demarche-admin-open-fund", app.Log)
			if err != nil {
				return err
			}
			defer nc.Close()
			openedBy := fmt.Sprintf("%s via demarche admin open-fund, %s: %s", natsauth.Provisioner.User(), whoHere(), strings.TrimSpace(reason))
			for _, f := range chosen {
				ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
				op, err := funding.OpenFund(ctx, nc, f, openedBy, app.Log)
				cancel()
				if err != nil {
					return err
				}
				line := op.Line
				if op.Opened {
					fmt.Fprintf(app.Out, "fund %s opened with %d USD (ledger line 1, hash %x…)\n", f.GetId(), line.GetAmountUsd(), line.GetHash()[:8])
				} else {
					fmt.Fprintf(app.Out, "fund %s was already open (%d USD, at %s, by %s): nothing written\n", f.GetId(), line.GetAmountUsd(),
						line.GetAt().AsTime().UTC().Format(time.RFC3339), line.GetOpenedBy())
				}
				fmt.Fprintf(app.Out, "  recorded on the audit chain %s, record %d (principal %s)\n", op.Record.GetChain(), op.Record.GetSequence(), op.Record.GetPrincipal())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&fundsFile, "funds", EnvOr("DEMARCHE_FUNDS_FILE", ""), "the funds file (YAML or JSON) the funding service runs with (env DEMARCHE_FUNDS_FILE)")
	cmd.Flags().StringArrayVar(&ids, "fund", nil, "id of a fund of the file to open (repeatable)")
	cmd.Flags().BoolVar(&all, "all", false, "open every fund of the file (those already open are left as they are)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the fund is opened, e.g. the decision or ticket (required; recorded in its opening line)")
	return cmd
}

func chooseFunds(funds []*demarchev1.Fund, ids []string, all bool, file string) ([]*demarchev1.Fund, error) {
	if all {
		return funds, nil
	}
	byID := map[string]*demarchev1.Fund{}
	var known []string
	for _, f := range funds {
		byID[f.GetId()] = f
		known = append(known, f.GetId())
	}
	var out []*demarchev1.Fund
	for _, id := range ids {
		f, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("--fund %s: no such fund in %s (funds there: %s)", id, file, strings.Join(known, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// provisionerURL is the NATS URL with the provisioner's credentials: those
// given (--nats-creds), else demarche dev's, when the data folder has them.
func (app *App) provisionerURL() (string, error) {
	if app.natsCreds != "" || os.Getenv("DEMARCHE_NATS_CREDS") != "" {
		return app.NATSURL, nil
	}
	def := filepath.Join(EnvOr("DEMARCHE_DATA_DIR", ".demarche"), "nats-credentials", "provisioner.creds")
	if _, err := os.Stat(def); err != nil {
		return app.NATSURL, nil
	}
	u, err := natsauth.WithCredentialsFile(app.NATSURL, def)
	if err != nil {
		return "", fmt.Errorf("%s: %w", def, err)
	}
	return u, nil
}

// natsUser is the user name in a NATS URL (the first of a seed list).
func natsUser(natsURL string) string {
	u, err := url.Parse(strings.TrimSpace(strings.Split(natsURL, ",")[0]))
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

// whoHere is the person and machine running the command, as the system knows them.
func whoHere() string {
	name := "unknown user"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname() // the host only labels who opened the fund; empty when unknown
	return fmt.Sprintf("system user %s on %s", name, host)
}
