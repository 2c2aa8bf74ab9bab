package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/backup"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
)

// DevPlatform starts `demarche dev`'s whole platform on a data folder (free
// loopback ports, no UI) for restore's settle step, and returns its
// gateway's address, a token of the folder's demo auditor, and how to stop
// it. The binary's main sets it (devstack/stack.SettlePlatform): this package
// never imports the embedded servers. Nil: a dev restore stops before
// settling and says how to settle by hand.
var DevPlatform func(ctx context.Context, dataDir string, log *zap.Logger) (server, auditorToken string, stop func(), err error)

// devOrCluster tells a dev data folder from a cluster: --data-dir given, or
// no --nats-url given, is dev (default ./.demarche).
func devOrCluster(cmd *cobra.Command, dataDir string) (string, bool) {
	if cmd.Flags().Changed("data-dir") || !cmd.Flags().Changed("nats-url") {
		return dataDir, true
	}
	return "", false
}

func newAdminBackupCmd(app *App) *cobra.Command {
	var out, dataDir string
	var recipients []string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up every stream, bucket and key of a dev data folder (or a cluster's streams), encrypted, with a manifest",
		Long: `Write one backup folder (--out, new or empty): every JetStream stream and
bucket the server holds (listed from the server, DEMARCHE_CRISIS, the ledger,
the audit chains and anchors, the buckets, any added later), each stream's
snapshot with its durable consumers' positions; and for a dev data folder
also Temporal's database and the folder's keys and credentials: the payload
codec key, the JetStream store key, the audit signing key, public key and
anchor file, the NATS credentials, the Temporal API keys, and the dev issuer
with its demo tokens. A manifest (manifest.json, in clear: names, counts,
hashes, public keys) gives per stream its messages, first and last sequence
and the SHA-256 of its snapshot, and every file's size and SHA-256.

Everything else is encrypted with age (filippo.io/age) to --recipient (an age
public key, age1..., or a file of them; repeatable). A dev backup with no
--recipient makes a new key, OUT.key (mode 0600) beside the folder, says so,
and "admin restore" finds it there: move it somewhere safe, apart from the
copies of the backup.

Dev (--data-dir, default ./.demarche): the platform must be stopped; the
backup holds the folder's lock throughout, so Temporal's histories and the
streams are one cut. Cluster (--nats-url with the provisioner's credentials,
--nats-creds, and no --data-dir): each stream is snapshotted on its own;
back up Temporal's PostgreSQL beside it with pg_dump (docs/operations.md),
the credentials and keys from where you keep them.`,
		Example: `  demarche admin backup --data-dir .demarche --out backups/2026-12-07
  demarche admin backup --out /backups/nats-2026-12-07 --recipient age1... \
    --nats-url nats://nats-1:4222 --nats-creds /run/secrets/provisioner.creds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, dev := devOrCluster(cmd, dataDir)
			opts := backup.Options{Out: out, Recipients: recipients, DataDir: dir, NATSURL: app.NATSURL, Progress: app.Out}
			if !dev {
				opts.NATSURL = app.NATSURL
			}
			res, err := backup.Backup(cmd.Context(), opts, app.Log)
			if err != nil {
				return err
			}
			var msgs uint64
			for _, s := range res.Manifest.Streams {
				msgs += s.Messages
			}
			fmt.Fprintf(app.Out, "backup %s: %s, %d streams and buckets (%d messages), %d files, %d bytes encrypted, in %s\n",
				out, res.Manifest.Kind, len(res.Manifest.Streams), msgs, len(res.Manifest.Files), res.Manifest.Size(), res.Duration.Round(time.Millisecond))
			fmt.Fprintf(app.Out, "encrypted to %v; manifest %s\n", res.Manifest.Recipients, filepath.Join(out, backup.ManifestFile))
			if res.KeyFile != "" {
				fmt.Fprintf(app.Out, "the key is %s (mode 0600): without it the backup cannot be read; keep it apart from the backup's copies\n", res.KeyFile)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "the backup folder to write (new or empty; required)")
	f.StringVar(&dataDir, "data-dir", EnvOr("DEMARCHE_DATA_DIR", ".demarche"), "the stopped demarche dev data folder to back up (env DEMARCHE_DATA_DIR)")
	f.StringSliceVar(&recipients, "recipient", nil, "age public key (age1...) or file of them to encrypt to (repeatable; dev default: a new key OUT.key)")
	return cmd
}

func newAdminRestoreCmd(app *App) *cobra.Command {
	var from, dataDir, identity, publicKey string
	var settleFor time.Duration
	var noSettle bool
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into an empty data folder (or a cluster without streams), then settle it with audit verify and reconcile",
		Long: `Restore the backup folder --from: first the key is checked (a wrong key is
refused, naming the backup's recipients and the key given, by their public
parts) and every encrypted file against the manifest's SHA-256; nothing is
written before. Then, for a dev backup, the data folder's files into
--data-dir (new or empty: a folder holding anything is refused), and every
stream and bucket, restored as the restorer identity (the only one allowed to
restore a stream), each checked against the manifest's messages and sequences.

Then the settle step: for a dev folder the whole platform is started on it
(free loopback ports) and, round after round until clean or --settle-timeout,
every crisis's audit chain is verified (links, signatures, anchors), every
crisis is reconciled with its workflow histories (decisions, events,
disbursements, bookings), the global chain verified and every fund's balance
checked against its ledger, printing each round's progress. Crises go on from
where they were: their workflows resume from Temporal's database, whose
events the restored streams hold. The restored folder is not a new one:
"demarche dev --data-dir" on it opens no fund.

A cluster restore (--nats-url with the restorer's credentials, no
--data-dir) restores the streams into a cluster that does not hold them (before
"admin provision"); restore Temporal's PostgreSQL with pg_restore first, start
the services, then settle with --server and an auditor's --token.`,
		Example: `  demarche admin restore --from backups/2026-12-07 --data-dir .demarche-restored
  demarche dev --data-dir .demarche-restored
  demarche admin restore --from /backups/nats-2026-12-07 --identity backup.key \
    --nats-url nats://nats-1:4222 --nats-creds /run/secrets/restorer.creds --server https://demarche.example.org`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return errors.New("--from: is required: the backup folder to restore")
			}
			dir, dev := devOrCluster(cmd, dataDir)
			res, err := backup.Restore(cmd.Context(), backup.RestoreOptions{From: from, IdentityFile: identity, DataDir: dir, NATSURL: app.NATSURL, Progress: app.Out}, app.Log)
			if err != nil {
				return err
			}
			var msgs uint64
			for _, s := range res.Streams {
				msgs += s.Messages
			}
			fmt.Fprintf(app.Out, "restored %d streams and buckets (%d messages) in %s\n", len(res.Streams), msgs, res.Duration.Round(time.Millisecond))
			if noSettle {
				fmt.Fprintln(app.Out, "not settled (--no-settle): run demarche audit verify and audit reconcile for every crisis before relying on it")
				return nil
			}
			keyText := publicKey
			if keyText == "" && dev {
				if b, err := os.ReadFile(filepath.Join(dir, audit.DevPublicKeyFile)); err == nil {
					keyText = string(b)
				}
			}
			trusted, err := readPublicKey(keyText)
			if err != nil {
				return err
			}
			if dev {
				if DevPlatform == nil {
					return fmt.Errorf("restored into %s, not settled: this binary cannot start the platform; run demarche dev --data-dir %s, then demarche audit verify and audit reconcile for every crisis", dir, dir)
				}
				fmt.Fprintf(app.Out, "settling: starting the platform on %s ...\n", dir)
				server, token, stop, err := DevPlatform(cmd.Context(), dir, app.Log)
				if err != nil {
					return fmt.Errorf("restored into %s, but the platform does not start on it: %w", dir, err)
				}
				defer stop()
				app.Server, app.Token = server, token
			}
			if err := app.Settle(cmd.Context(), trusted, settleFor); err != nil {
				return err
			}
			if dev {
				fmt.Fprintf(app.Out, "restored and settled: start it with demarche dev --data-dir %s\n", dir)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the backup folder (written by demarche admin backup; required)")
	f.StringVar(&identity, "identity", "", "the age identity (private key) file that decrypts it (default: FROM.key, the key a dev backup made)")
	f.StringVar(&dataDir, "data-dir", EnvOr("DEMARCHE_DATA_DIR", ".demarche"), "the new dev data folder to restore into (must be new or empty; env DEMARCHE_DATA_DIR)")
	f.StringVar(&publicKey, "public-key", "", "the audit public key chains must verify with (default: the restored folder's audit-signing.pub)")
	f.DurationVar(&settleFor, "settle-timeout", 3*time.Minute, "how long the settle step retries until verify and reconcile are clean")
	f.BoolVar(&noSettle, "no-settle", false, "restore only; settle later by hand (audit verify and reconcile)")
	return cmd
}

// Settle verifies and reconciles every crisis, the global chain and every
// fund's ledger through the gateway, round after round, until all is clean
// or timeout passes: a restored platform's audit service may still be
// appending the records of events it had not consumed at the cut, and
// workflows that were mid-activity finish it. Each round is printed.
func (a *App) Settle(ctx context.Context, trusted ed25519.PublicKey, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for round := 1; ; round++ {
		crises, problems, err := a.settleRound(ctx, trusted)
		if err != nil {
			problems = append(problems, err.Error())
		}
		if len(problems) == 0 {
			fmt.Fprintf(a.Out, "settle round %d: %d crises, every chain verifies and reconciles with its histories, every fund's balance equals its ledger: clean\n", round, crises)
			return nil
		}
		fmt.Fprintf(a.Out, "settle round %d: %d crises, %d problem(s) left, first: %s\n", round, crises, len(problems), problems[0])
		if time.Now().After(deadline) {
			for _, p := range problems {
				fmt.Fprintln(a.Out, "  UNSETTLED", p)
			}
			return fmt.Errorf("not settled after %s: %d problem(s) (listed above); a record the histories hold and the streams lack must be re-published", timeout, len(problems))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (a *App) settleRound(ctx context.Context, trusted ed25519.PublicKey) (int, []string, error) {
	var problems []string
	var bal demarchev1.BalanceResponse
	if err := a.call(ctx, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &bal); err != nil {
		return 0, nil, fmt.Errorf("fund balances: %w", err)
	}
	for _, f := range bal.GetFunds() {
		if f.GetProblem() != "" {
			problems = append(problems, fmt.Sprintf("fund %s: %s", f.GetFund().GetId(), f.GetProblem()))
		}
	}
	crises, err := a.listCrises(ctx, url.Values{}, 5000)
	if err != nil {
		return 0, nil, fmt.Errorf("list crises: %w", err)
	}
	verify := func(id string) error {
		chain, err := a.fetchChain(ctx, id)
		if err != nil {
			return err
		}
		_, err = audit.Verify(audit.ChainOf(id), chain.GetRecords(), audit.VerifyOptions{Head: chain.GetHead(), TrustedKey: trusted,
			Anchor: chain.GetAnchor(), CoverWithin: audit.DefaultAnchorEvery + audit.DefaultAnchorGrace, Now: time.Now()})
		return err
	}
	if err := verify(""); err != nil {
		problems = append(problems, "global chain: "+err.Error())
	}
	for _, c := range crises {
		id := c.GetCrisisId()
		if err := verify(id); err != nil {
			problems = append(problems, fmt.Sprintf("crisis %s: verify: %v", id, err))
			continue
		}
		chain, err := a.fetchChain(ctx, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("crisis %s: %v", id, err))
			continue
		}
		hs, err := a.histories(ctx, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("crisis %s: %v", id, err))
			continue
		}
		rep, err := audit.Reconcile(hs, chain.GetRecords())
		if err != nil {
			problems = append(problems, fmt.Sprintf("crisis %s: reconcile: %v", id, err))
			continue
		}
		lines, bookings, skipped, err := a.moneyOf(ctx, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("crisis %s: %v", id, err))
			continue
		}
		for _, s := range skipped {
			problems = append(problems, fmt.Sprintf("crisis %s: %s", id, s))
		}
		rep.ReconcileMoney(id, hs, lines, bookings)
		for _, p := range rep.Problems() {
			problems = append(problems, fmt.Sprintf("crisis %s: reconcile: %s", id, p))
		}
	}
	return len(crises), problems, nil
}
