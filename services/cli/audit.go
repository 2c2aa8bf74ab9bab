package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/workflows/crisis"
)

// auditFlagOf maps a validated audit request field to the flag that sets it.
var auditFlagOf = map[string]string{"crisis_id": "--crisis"}

func auditFlagNames(err error) error { return namedByFlags(err, auditFlagOf) }

func newAuditCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Audit trail: verify hash chains, reconcile them with workflow histories, export evidence bundles",
		Long: `The audit service ("demarche serve audit") appends every crisis event to
tamper-evident hash chains in the JetStream stream ` + audit.StreamName + `: one chain per
crisis (demarche.audit.crisis.<id>) and one global chain (demarche.audit.global).
Each record holds its sequence number, the SHA-256 of the previous record, a
digest of the event, the acting principal, the time and the crisis; chain heads
are signed with ed25519 when a key is configured (--signing-key on the service,
or ` + audit.EnvSigningKey + ` / ` + audit.EnvSigningKeyFile + `).

Reading audit data is itself audited: every command here that reads a chain
appends an "audit-read" record naming the reader (the identity of your credential).

Exit status is non-zero when a chain, a reconciliation or a bundle fails.`,
	}
	cmd.AddCommand(newAuditVerifyCmd(app), newAuditReconcileCmd(app), newAuditExportCmd(app), newAuditReplayCmd(app))
	return cmd
}

// fetchChain reads a chain through the gateway and the audit service (an
// audited read, recorded as the credential's identity).
func (a *App) fetchChain(ctx context.Context, crisisID string) (*demarchev1.AuditChain, error) {
	if err := (&demarchev1.AuditChainRequest{CrisisId: crisisID, Reader: "you"}).Validate(); err != nil {
		return nil, auditFlagNames(err)
	}
	return audit.FetchChainVia(ctx, a.call, crisisID, "")
}

func readPublicKey(text string) (ed25519.PublicKey, error) {
	if text == "" {
		return nil, nil
	}
	k, err := audit.ParsePublicKey(text)
	if err != nil {
		return nil, fmt.Errorf("--public-key: %s", reasonOf(err))
	}
	return k, nil
}

// readOldPublicKeys decodes --old-public-key values (the signing keys a
// rotation replaced).
func readOldPublicKeys(texts []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, t := range texts {
		if strings.TrimSpace(t) == "" {
			continue
		}
		k, err := audit.ParsePublicKey(t)
		if err != nil {
			return nil, fmt.Errorf("--old-public-key: %s", reasonOf(err))
		}
		out = append(out, k)
	}
	return out, nil
}

// trustedKey is the audit public key `audit verify` checks heads, records
// and anchors with: --public-key, else DEMARCHE_AUDIT_PUBLIC_KEY, else
// `demarche dev`'s DATA/audit-signing.pub when there is one here. It never
// comes from the service being checked: a key the chain brings along proves
// nothing about who wrote it.
func trustedKey(flag string) (ed25519.PublicKey, string, error) {
	if flag != "" {
		k, err := readPublicKey(flag)
		return k, "--public-key", err
	}
	if v := os.Getenv(audit.EnvPublicKey); v != "" {
		k, err := audit.ParsePublicKey(v)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %s", audit.EnvPublicKey, reasonOf(err))
		}
		return k, audit.EnvPublicKey, nil
	}
	def := filepath.Join(EnvOr("DEMARCHE_DATA_DIR", ".demarche"), audit.DevPublicKeyFile)
	b, err := os.ReadFile(def)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("audit public key %s: %w", def, err)
	}
	k, err := audit.ParsePublicKey(string(b))
	if err != nil {
		return nil, "", fmt.Errorf("audit public key %s: %s", def, reasonOf(err))
	}
	return k, def, nil
}

// resultJSON is a verified chain as --output json prints it.
func resultJSON(res *audit.Result) map[string]any {
	if res == nil {
		return nil
	}
	return map[string]any{"chain": res.Chain, "records": res.Records, "headHash": hex.EncodeToString(res.HeadHash),
		"headSigned": res.HeadSigned, "signerKey": res.SignerKey, "anchored": res.Anchored, "verified": true}
}

func newAuditVerifyCmd(app *App) *cobra.Command {
	var crisisID, bundle, publicKey, anchorFile string
	var oldPublicKeys []string
	var anchorEvery, anchorGrace time.Duration
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Recompute a hash chain (or check an evidence bundle offline) and report the first break",
		Long: `Recompute a chain, record by record: sequence numbers, links to the previous
record and each record's hash, then the chain's head and its signature. The
first record where a modification, deletion, insertion or reordering breaks the
chain is reported with its number and the expected and found values.

Without --bundle the chain comes from the audit service (the crisis's with
--crisis, else the global chain) and is also checked against its last anchor
(a signed head the audit service publishes periodically to a stream of its own,
DEMARCHE_AUDIT_ANCHORS, or the anchor file given with --anchor): a chain
truncated or rewritten after it was anchored is reported at the anchored
record. Every record older than the anchoring interval plus a grace
(--anchor-every, --anchor-grace) must be covered by a signed anchor: a chain
whose anchors stopped, were removed, or that was truncated where no anchor
shows it fails, naming the records not covered. Heads, records and anchors are
checked with the audit public key: --public-key, else env ` + audit.EnvPublicKey + `,
else demarche dev's DATA/` + audit.DevPublicKeyFile + ` (DATA: env DEMARCHE_DATA_DIR or
.demarche), never a key the service sends along. After a rotation of the
signing key, give the replaced keys' public keys with --old-public-key
(repeatable; env ` + audit.EnvOldPublicKeys + `): records, heads and anchors they
signed are accepted too, and a record signed by no listed key is a forgery.

With --bundle FILE an evidence bundle written
by "demarche audit export" is checked offline, with no server: every file
against the manifest's SHA-256 (a modified file is named), the manifest's
signature when present, and the chain inside.`,
		Example: `  demarche audit verify --crisis GN-20261127-K7Q3P
  demarche audit verify
  demarche audit verify --bundle evidence-GN-20261127-K7Q3P.tar.gz --public-key BASE64
  demarche audit verify --crisis GN-20261127-K7Q3P --public-key NEW_BASE64 --old-public-key OLD_BASE64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := output.json(); err != nil {
				return err
			}
			older, err := readOldPublicKeys(oldPublicKeys)
			if err != nil {
				return err
			}
			if bundle != "" {
				trusted, err := readPublicKey(publicKey)
				if err != nil {
					return err
				}
				f, err := os.Open(bundle)
				if err != nil {
					return fmt.Errorf("--bundle: %w", err)
				}
				defer f.Close()
				rep, err := audit.VerifyBundle(f, trusted, older...)
				if err != nil {
					return fmt.Errorf("bundle %s does not verify: %w", bundle, err)
				}
				if crisisID != "" && rep.CrisisID != crisisID {
					return fmt.Errorf("--crisis: bundle %s is the evidence of crisis %s, not %s", bundle, rep.CrisisID, crisisID)
				}
				// the --output value was checked when the command started
				if asJSON, _ := output.json(); asJSON {
					return app.printJSON(map[string]any{"bundle": bundle, "crisisId": rep.CrisisID, "files": rep.Files,
						"histories": rep.Histories, "manifestSigner": rep.Signer, "chain": resultJSON(rep.Chain)})
				}
				signed := "unsigned"
				if rep.Signer != "" {
					signed = "manifest signed by key " + rep.Signer
				}
				fmt.Fprintf(app.Out, "bundle %s verifies: crisis %s, %d files match the manifest (%s), %d histories\n",
					bundle, rep.CrisisID, rep.Files, signed, rep.Histories)
				printResult(app, rep.Chain)
				return nil
			}
			trusted, _, err := trustedKey(publicKey)
			if err != nil {
				return err
			}
			chain, err := app.fetchChain(cmd.Context(), crisisID)
			if err != nil {
				return err
			}
			anchor := chain.GetAnchor()
			if anchorFile != "" {
				if anchor, err = audit.ReadAnchorFile(anchorFile, audit.ChainOf(crisisID)); err != nil {
					return fmt.Errorf("--anchor: %w", err)
				}
				if anchor == nil {
					return fmt.Errorf("--anchor: %s holds no anchor of chain %s", anchorFile, audit.ChainOf(crisisID))
				}
			}
			var cover time.Duration
			if anchorEvery > 0 {
				cover = anchorEvery + anchorGrace
			}
			res, err := audit.Verify(audit.ChainOf(crisisID), chain.GetRecords(), audit.VerifyOptions{Head: chain.GetHead(), TrustedKey: trusted, OlderKeys: older, Anchor: anchor,
				CoverWithin: cover, Now: time.Now()})
			if err != nil {
				return err
			}
			res.CoverWithin = cover
			return app.render(output, resultJSON(res), func() error { printResult(app, res); return nil })
		},
	}
	output.bind(cmd)
	cmd.Flags().StringVar(&crisisID, "crisis", "", "the crisis whose chain to verify (default: the global chain)")
	cmd.Flags().StringVar(&bundle, "bundle", "", "an evidence bundle to check offline (tar.gz from \"audit export\")")
	cmd.Flags().StringVar(&publicKey, "public-key", "", "base64 ed25519 public key that must have signed the head and records (or the bundle's manifest)")
	cmd.Flags().StringSliceVar(&oldPublicKeys, "old-public-key", splitList(os.Getenv(audit.EnvOldPublicKeys)), "base64 public key of a signing key a rotation replaced: records, heads and anchors it signed are accepted too (repeatable; env "+audit.EnvOldPublicKeys+", comma-separated)")
	cmd.Flags().DurationVar(&anchorEvery, "anchor-every", audit.DefaultAnchorEvery, "the audit service's anchoring interval (its --anchor-every); 0: do not require anchors")
	cmd.Flags().DurationVar(&anchorGrace, "anchor-grace", audit.DefaultAnchorGrace, "how late an anchor may be beyond the interval")
	cmd.Flags().StringVar(&anchorFile, "anchor", "", "an anchor file (the audit service's --anchor-file, copied off the machine) to check the chain against, instead of the last anchor the service reports")
	return cmd
}

func printResult(app *App, res *audit.Result) {
	head := "head unsigned"
	if res.HeadSigned {
		head = "head signed by key " + res.SignerKey
	}
	anchored := "not anchored yet"
	if res.CoverWithin > 0 {
		anchored = fmt.Sprintf("not anchored yet (every record younger than %s)", res.CoverWithin)
	}
	if res.Anchored > 0 {
		anchored = fmt.Sprintf("holds its anchor at record %d", res.Anchored)
	}
	fmt.Fprintf(app.Out, "chain %s verifies: %d records, last hash %x, %s, %s\n", res.Chain, res.Records, res.HeadHash, head, anchored)
}

func newAuditReconcileCmd(app *App) *cobra.Command {
	var crisisID string
	var contributions bool
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Cross-check a crisis's workflow histories against its audit chain",
		Long: `Fetch the workflow histories of a crisis and of its child workflows from
Temporal, rebuild their decision trail, and check that every decision has a
matching audit record (the same DecisionRecorded event: id, decision number,
kind and principal) and that every decision record of the crisis's audit chain
has a matching decision in a history. The same for every event of any type the
workflows published: each has its record, carrying the same workflow and
history event, and each workflow event record has its publication in a history.
Every run of each workflow is read: after a reset (temporal workflow reset) the
replaced run's events keep their records, the new run's events have their own,
and the reset is listed as an operation outside Démarche (OUTSIDE), which must
have its CrisisAlteredOutside record. Money and people too: every disbursement
line of any fund's ledger for the crisis and every booking of the crisis must
carry out a decision its histories hold (an approval of that request, an
appointment of that expert in that role), and every approval must have exactly
one disbursement. Anything unmatched is named; the exit status is then non-zero.

With --contributions instead of --crisis: money coming in. Every voluntary
contribution line of every fund's ledger must have its fund-contribution record
on the global audit chain (same line hash, same principal who credited it), and
every such record its line (the global chain needs confidential clearance).`,
		Example: "  demarche audit reconcile --crisis GN-20261127-K7Q3P\n  demarche audit reconcile --contributions",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if contributions {
				if crisisID != "" {
					return errors.New("--contributions and --crisis: give one (contributions name no crisis)")
				}
				return app.reconcileContributions(cmd.Context(), output)
			}
			if crisisID == "" {
				return errors.New("crisis_id (--crisis): is required: the crisis to reconcile (or --contributions)")
			}
			chain, err := app.fetchChain(cmd.Context(), crisisID)
			if err != nil {
				return err
			}
			hs, err := app.histories(cmd.Context(), crisisID)
			if err != nil {
				return err
			}
			rep, err := audit.Reconcile(hs, chain.GetRecords())
			if err != nil {
				return err
			}
			lines, bookings, skipped, err := app.moneyOf(cmd.Context(), crisisID)
			if err != nil {
				return err
			}
			rep.ReconcileMoney(crisisID, hs, lines, bookings)
			if asJSON, err := output.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				problems := rep.Problems()
				if problems == nil {
					problems = []string{}
				}
				absorbed := []string{}
				for _, a := range rep.Absorbed {
					absorbed = append(absorbed, a.String())
				}
				if skipped == nil {
					skipped = []string{}
				}
				if err := app.printJSON(map[string]any{"crisisId": crisisID, "chain": chain.GetChain(), "histories": len(hs), "absorbed": absorbed,
					"decisions": rep.Decisions, "records": rep.Records, "matched": rep.Matched, "problems": problems, "ok": rep.OK(),
					"disbursements": rep.Disbursements, "bookings": rep.Bookings, "approvals": rep.Approvals, "fundsNotRead": skipped}); err != nil {
					return err
				}
				if !rep.OK() {
					return rep.Error()
				}
				return nil
			}
			fmt.Fprintf(app.Out, "crisis %s: %d histories, %d decisions in them, %d decision records in chain %s, %d matched\n",
				crisisID, len(hs), rep.Decisions, rep.Records, chain.GetChain(), rep.Matched)
			fmt.Fprintf(app.Out, "  every event: %d published in the histories, %d workflow event records, %d matched (same workflow and history event); %d records from outside the workflows, %d operation records\n",
				rep.Events, rep.EventRecords, rep.EventsMatched, rep.OutsideWorkflows, rep.Operations)
			fmt.Fprintf(app.Out, "  money and people: %d disbursement line(s), %d booking(s), %d approval(s), each matched with the histories' decisions\n",
				rep.Disbursements, rep.Bookings, rep.Approvals)
			for _, f := range skipped {
				fmt.Fprintln(app.Out, "  NOT READ ", f)
			}
			for _, op := range rep.Outside {
				fmt.Fprintf(app.Out, "  OUTSIDE   %s %s\n", op.GetWorkflowId(), crisis.DescribeOutside(op))
			}
			for _, a := range rep.Absorbed {
				fmt.Fprintln(app.Out, "  ABSORBED ", a)
			}
			for _, p := range rep.Problems() {
				fmt.Fprintln(app.Out, "  MISMATCH", p)
			}
			if !rep.OK() {
				return rep.Error()
			}
			fmt.Fprintln(app.Out, "every decision has its audit record, and every decision record its history entry; every event too")
			if len(rep.Outside) > 0 {
				fmt.Fprintf(app.Out, "the crisis was altered outside Démarche %d time(s); each has its audit record\n", len(rep.Outside))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&crisisID, "crisis", "", "the crisis to reconcile (required, unless --contributions)")
	cmd.Flags().BoolVar(&contributions, "contributions", false, "reconcile the funds' voluntary contributions with the global audit chain instead of a crisis")
	output.bind(cmd)
	return cmd
}

// moneyOf fetches, through the gateway, every fund's ledger lines and the
// crisis's bookings (real and drill), for reconcile to match with the
// histories' decisions. A fund whose ledger cannot be read (broken: its own
// alarm) is named in skipped, not fatal.
func (a *App) moneyOf(ctx context.Context, crisisID string) (lines []*demarchev1.LedgerEntry, bookings []*demarchev1.Assignment, skipped []string, err error) {
	var bal demarchev1.BalanceResponse
	if err := a.call(ctx, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &bal); err != nil {
		return nil, nil, nil, fmt.Errorf("fund balances: %w", err)
	}
	for _, f := range bal.GetFunds() {
		if f.GetProblem() != "" {
			skipped = append(skipped, fmt.Sprintf("fund %s: %s", f.GetFund().GetId(), f.GetProblem()))
			continue
		}
		var l demarchev1.LedgerResponse
		if err := a.call(ctx, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: f.GetFund().GetId()}, &l); err != nil {
			skipped = append(skipped, fmt.Sprintf("fund %s: %v", f.GetFund().GetId(), err))
			continue
		}
		lines = append(lines, l.GetEntries()...)
	}
	for _, drill := range []bool{false, true} {
		var as demarchev1.AssignmentsResponse
		if err := a.call(ctx, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: crisisID, Drill: drill}, &as); err != nil {
			return nil, nil, nil, fmt.Errorf("bookings of %s: %w", crisisID, err)
		}
		bookings = append(bookings, as.GetAssignments()...)
	}
	return lines, bookings, skipped, nil
}

// reconcileContributions is "demarche audit reconcile --contributions": every
// fund's contribution lines against the global chain's fund-contribution records.
func (a *App) reconcileContributions(ctx context.Context, output outputFlag) error {
	chain, err := a.fetchChain(ctx, "")
	if err != nil {
		return fmt.Errorf("the global chain: %w", err)
	}
	var bal demarchev1.BalanceResponse
	if err := a.call(ctx, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &bal); err != nil {
		return fmt.Errorf("fund balances: %w", err)
	}
	var lines []*demarchev1.LedgerEntry
	var skipped, skippedFunds []string
	for _, f := range bal.GetFunds() {
		var l demarchev1.LedgerResponse
		if f.GetProblem() != "" {
			skipped, skippedFunds = append(skipped, fmt.Sprintf("fund %s: %s", f.GetFund().GetId(), f.GetProblem())), append(skippedFunds, f.GetFund().GetId())
			continue
		}
		if err := a.call(ctx, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: f.GetFund().GetId()}, &l); err != nil {
			skipped, skippedFunds = append(skipped, fmt.Sprintf("fund %s: %v", f.GetFund().GetId(), err)), append(skippedFunds, f.GetFund().GetId())
			continue
		}
		lines = append(lines, l.GetEntries()...)
	}
	rep := audit.ReconcileContributions(lines, chain.GetRecords(), skippedFunds)
	fail := func() error {
		return fmt.Errorf("%w: %d contribution problem(s): %s", errs.ErrConflict, len(rep.Problems), strings.Join(rep.Problems, "; "))
	}
	if asJSON, err := output.json(); err != nil || asJSON {
		if err != nil {
			return err
		}
		problems := rep.Problems
		if problems == nil {
			problems = []string{}
		}
		if skipped == nil {
			skipped = []string{}
		}
		if err := a.printJSON(map[string]any{"chain": chain.GetChain(), "contributions": rep.Contributions, "records": rep.Records,
			"creditedUsd": rep.CreditedUSD, "problems": problems, "ok": rep.OK(), "fundsNotRead": skipped}); err != nil {
			return err
		}
		if !rep.OK() {
			return fail()
		}
		return nil
	}
	fmt.Fprintf(a.Out, "contributions: %d line(s) in the funds' ledgers, %d fund-contribution record(s) on chain %s\n", rep.Contributions, rep.Records, chain.GetChain())
	funds := make([]string, 0, len(rep.CreditedUSD))
	for f := range rep.CreditedUSD {
		funds = append(funds, f)
	}
	sort.Strings(funds)
	for _, f := range funds {
		fmt.Fprintf(a.Out, "  %s: %d USD contributed\n", f, rep.CreditedUSD[f])
	}
	for _, f := range skipped {
		fmt.Fprintln(a.Out, "  NOT READ ", f)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(a.Out, "  MISMATCH", p)
	}
	if !rep.OK() {
		return fail()
	}
	fmt.Fprintln(a.Out, "every contribution line has its audit record, and every contribution record its line")
	return nil
}

// histories fetches a crisis's workflow histories through the gateway.
func (a *App) histories(ctx context.Context, crisisID string) ([]audit.History, error) {
	api, err := a.api()
	if err != nil {
		return nil, err
	}
	var resp struct {
		Histories []struct {
			WorkflowID string          `json:"workflowId"`
			RunID      string          `json:"runId"`
			History    json.RawMessage `json:"history"`
		} `json:"histories"`
	}
	if err := api.do(ctx, "GET", "/v1/audit/histories/"+url.PathEscape(crisisID), nil, nil, &resp); err != nil {
		return nil, fmt.Errorf("crisis %s: %w", crisisID, err)
	}
	out := make([]audit.History, 0, len(resp.Histories))
	for _, h := range resp.Histories {
		var hist historypb.History
		if err := protojson.Unmarshal(h.History, &hist); err != nil {
			return nil, fmt.Errorf("history of %s: %w", h.WorkflowID, err)
		}
		out = append(out, audit.History{WorkflowID: h.WorkflowID, RunID: h.RunID, History: &hist})
	}
	return out, nil
}

func newAuditExportCmd(app *App) *cobra.Command {
	var crisisID, out, keyFile string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a crisis's evidence bundle (tar.gz): histories, audit chain, decision trail, figures, signed manifest",
		Long: `Write an evidence bundle for a crisis: the workflow histories of the crisis
and its child workflows (the JSON of "temporal workflow show --output json"),
the crisis's audit chain with its head, the decision trail rebuilt from the
histories, the closure figures, and manifest.json with the SHA-256 of every
file, signed (manifest.sig) when a key is configured (--signing-key, or
` + audit.EnvSigningKey + ` / ` + audit.EnvSigningKeyFile + `).

"demarche audit verify --bundle FILE" checks it on any machine, offline.`,
		Example: "  demarche audit export --crisis GN-20261127-K7Q3P --out evidence-GN-20261127-K7Q3P.tar.gz",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case crisisID == "":
				return errors.New("crisis_id (--crisis): is required: the crisis to export")
			case out == "":
				return errors.New("--out: is required: the bundle file to write (.tar.gz)")
			}
			key, err := audit.LoadSigningKey(keyFile)
			if err != nil {
				return fmt.Errorf("--signing-key: %w", err)
			}
			ctx := cmd.Context()
			chain, err := app.fetchChain(ctx, crisisID)
			if err != nil {
				return err
			}
			hs, err := app.histories(ctx, crisisID)
			if err != nil {
				return err
			}
			figures := audit.FiguresOf(hs)
			if figures == nil { // still open, or a history without its result: ask the crisis
				if st, err := app.crisisState(ctx, crisisID); err == nil {
					figures = st.GetFigures()
				}
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			who, err := api.whoami(ctx)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			m, err := audit.WriteBundle(&buf, audit.BundleInput{CrisisID: crisisID, Histories: hs, Chain: chain,
				Figures: figures, CreatedBy: who.GetSubject(), Key: key, Now: time.Now()})
			if err != nil {
				return err
			}
			if dir := filepath.Dir(out); dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			signed := "unsigned"
			if key != nil {
				signed = "manifest signed by key " + audit.KeyID(key.Public().(ed25519.PublicKey))
			}
			fmt.Fprintf(app.Out, "wrote %s: %d files (%d histories, %d audit records, figures: %v), %s\n",
				out, len(m.GetFiles()), len(hs), len(chain.GetRecords()), figures != nil, signed)
			for _, f := range m.GetFiles() {
				fmt.Fprintf(app.Out, "  %s  %s\n", f.GetSha256(), f.GetName())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&crisisID, "crisis", "", "the crisis to export (required)")
	cmd.Flags().StringVar(&out, "out", "", "the bundle file to write, .tar.gz (required)")
	cmd.Flags().StringVar(&keyFile, "signing-key", "", "file holding a base64 ed25519 seed that signs the manifest (default: env "+audit.EnvSigningKey+" or "+audit.EnvSigningKeyFile+")")
	return cmd
}

// newServeAuditCmd is `demarche serve audit`.
func newServeAuditCmd(app *App) *cobra.Command {
	var keyFile, anchorFile string
	var anchorEvery time.Duration
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Run the audit service: hash-chained records of every crisis event, audited reads (NATS micro)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" && os.Getenv(audit.EnvSigningKey) == "" && os.Getenv(audit.EnvSigningKeyFile) == "" {
				// `demarche dev`'s key, when this runs beside its data folder (dev --without audit).
				def := filepath.Join(EnvOr("DEMARCHE_DATA_DIR", ".demarche"), audit.DevKeyFile)
				if _, err := os.Stat(def); err == nil {
					keyFile = def
				}
			}
			key, err := audit.LoadSigningKey(keyFile)
			if err != nil {
				return fmt.Errorf("--signing-key: %w", err)
			}
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				s, err := audit.Start(ctx, audit.Config{NATSURL: app.NATSURL, SigningKey: key, AnchorFile: anchorFile, AnchorEvery: anchorEvery}, app.Log)
				if err != nil {
					return nil, err
				}
				return s.Stop, nil
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "signing-key", "", "file holding a base64 ed25519 seed that signs chain heads, records and anchors (default: env "+audit.EnvSigningKey+" or "+audit.EnvSigningKeyFile+", else demarche dev's DATA/"+audit.DevKeyFile+" if there is one; none: unsigned, and audit verify fails once records outlive the anchoring interval)")
	cmd.Flags().StringVar(&anchorFile, "anchor-file", "", "also append every anchor (signed chain head) to this file, one JSON line each; copy it off the machine")
	cmd.Flags().DurationVar(&anchorEvery, "anchor-every", audit.DefaultAnchorEvery, "how often the heads of grown chains are anchored in "+audit.AnchorStream)
	return cmd
}

// NewAuditCmd is `demarche audit`, for callers outside this package (the
// devstack tests build a root command with it until root.go adds it).
func NewAuditCmd(app *App) *cobra.Command { return newAuditCmd(app) }
