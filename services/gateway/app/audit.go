package app

// The auditor's use cases (issue 24, item 5): a crisis's chain status, a
// verification or reconciliation run on demand, and its evidence bundle.
// They do what `demarche audit verify|reconcile|export` do, over the same
// request subjects (demarche.audit.chain through the audit service, the
// histories from Temporal, the ledgers and bookings from funding and the
// roster), so an auditor in a browser and one at a terminal see the same
// answer. Every read is audited as the API's are: the crisis is read with
// Crisis (a restricted or confidential one recorded as read), the chain is
// read as the auditor (the audit service records an audit-read), and each
// run's result is itself recorded on the crisis's chain (an audit-read
// record whose detail is the result, AuditRunPrefix), which is where the
// page reads the runs back from: tamper-evident, like everything there.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/workflows/trail"
)

// AuditRunPrefix starts the detail of the audit-read record a verification
// or reconciliation run from the gateway leaves on the crisis's chain:
// "audit-run verify: ..." or "audit-run reconcile: ...".
const AuditRunPrefix = "audit-run "

// WithAuditKey is the audit service's public key the chain's records, head
// and anchor must be signed with (nil: signatures are checked against the
// key the chain brings, which proves only that the chain is whole).
func WithAuditKey(k ed25519.PublicKey) Option { return func(a *App) { a.auditKey = k } }

// WithAnchorCover is how long a record may wait for its anchor: the audit
// service's anchoring interval plus a grace (0: the service's defaults;
// negative: anchors are not required, for an audit service that does not
// anchor).
func WithAnchorCover(d time.Duration) Option { return func(a *App) { a.anchorCover = d } }

// ChainStatus is where a crisis's audit chain stands.
type ChainStatus struct {
	Chain   string
	Records int
	// Verified: every record links to the one before, every hash and
	// signature holds, and the head and anchor match. Problem is the first
	// break otherwise.
	Verified bool
	Problem  string
	// HeadSigned, SignerKey: the head's signature, by which key.
	HeadSigned bool
	SignerKey  string
	// TrustedKey: checked against the configured audit key (else against
	// the key the chain brings along, which proves less).
	TrustedKey bool
	// Anchored is the record the chain's last anchor covers (0: none yet),
	// AnchoredAt when it was anchored.
	Anchored   uint64
	AnchoredAt time.Time
	// Runs are the verification and reconciliation runs recorded on the
	// chain, newest first.
	Runs []AuditRun
}

// AuditRun is one verification or reconciliation run recorded on a chain.
type AuditRun struct {
	At        time.Time
	Principal string
	// Kind is "verify" or "reconcile"; OK whether it passed; Result its words.
	Kind, Result string
	OK           bool
}

// chainOf reads a crisis's chain as p (an audited read), once p may audit
// and may see the crisis (whose read is recorded as any other).
func (a *App) chainOf(ctx context.Context, p *authn.Principal, q CrisisQuery) (*demarchev1.CrisisState, *demarchev1.AuditChain, error) {
	if err := a.allow(authz.Audit, p, "audit"); err != nil {
		return nil, nil, err
	}
	st, err := a.Crisis(ctx, p, q)
	if err != nil {
		return nil, nil, err
	}
	chain, err := audit.FetchChainVia(ctx, a.call, q.ID, p.Subject)
	if err != nil {
		return nil, nil, fmt.Errorf("audit chain of %s: %w", q.ID, err)
	}
	return st, chain, nil
}

func (a *App) call(ctx context.Context, subject string, req, resp proto.Message) error {
	return natsrpc.Call(ctx, a.nc, subject, req, resp)
}

// verify checks a chain as `demarche audit verify --crisis` does, anchors
// required (the audit service's default interval and grace).
func (a *App) verify(id string, chain *demarchev1.AuditChain) (*ChainStatus, error) {
	cs := &ChainStatus{Chain: audit.ChainOf(id), Records: len(chain.GetRecords()), TrustedKey: a.auditKey != nil}
	if an := chain.GetAnchor(); an != nil {
		cs.AnchoredAt = an.GetAt().AsTime()
	}
	if len(chain.GetRecords()) == 0 && chain.GetHead() == nil {
		// Nothing chained yet (the audit service chains a crisis's events as
		// they come): nothing to verify, and nothing broken.
		cs.Problem = "the chain holds no record yet"
		return cs, nil
	}
	cover := a.anchorCover
	if cover == 0 {
		cover = audit.DefaultAnchorEvery + audit.DefaultAnchorGrace
	}
	res, err := audit.Verify(cs.Chain, chain.GetRecords(), audit.VerifyOptions{Head: chain.GetHead(), TrustedKey: a.auditKey,
		Anchor: chain.GetAnchor(), CoverWithin: max(cover, 0), Now: time.Now()})
	switch {
	case errors.Is(err, audit.ErrBroken):
		cs.Problem = err.Error()
	case err != nil:
		return nil, err
	default:
		cs.Verified, cs.HeadSigned, cs.SignerKey, cs.Anchored = true, res.HeadSigned, res.SignerKey, res.Anchored
	}
	for _, r := range chain.GetRecords() {
		kind, rest, ok := strings.Cut(strings.TrimPrefix(r.GetDetail(), AuditRunPrefix), ": ")
		if r.GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ || !strings.HasPrefix(r.GetDetail(), AuditRunPrefix) || !ok {
			continue
		}
		okRun := strings.HasPrefix(rest, "OK")
		cs.Runs = append([]AuditRun{{At: r.GetEventTime().AsTime(), Principal: r.GetPrincipal(), Kind: kind, Result: rest, OK: okRun}}, cs.Runs...)
	}
	return cs, nil
}

// AuditStatus is a crisis (as p may read it) and its chain's status:
// verified now, anchored, and the runs recorded on it. For auditors (the
// audit.read action); a crisis p may not see is errs.ErrNotFound.
func (a *App) AuditStatus(ctx context.Context, p *authn.Principal, q CrisisQuery) (*demarchev1.CrisisState, *ChainStatus, error) {
	st, chain, err := a.chainOf(ctx, p, q)
	if err != nil {
		return nil, nil, err
	}
	cs, err := a.verify(q.ID, chain)
	if err != nil {
		return nil, nil, err
	}
	return st, cs, nil
}

// record leaves a run's result on the crisis's chain (and the global one):
// no record, no result (errs.ErrUnavailable).
func (a *App) record(ctx context.Context, p *authn.Principal, id, kind, result string) error {
	detail := truncate(AuditRunPrefix+kind+": "+result, 1500)
	if err := natsrpc.Call(ctx, a.nc, natsrpc.AuditRead, &demarchev1.AuditReadRequest{Reader: p.Subject, CrisisId: id, Detail: detail}, &demarchev1.AuditReadResponse{}); err != nil {
		return fmt.Errorf("%w: the %s run's result could not be recorded on the audit chain; retry: %v", errs.ErrUnavailable, kind, err)
	}
	return nil
}

// VerifyRun verifies a crisis's chain now and records the result on it,
// answering the run. A chain that does not verify is a result, not an error.
func (a *App) VerifyRun(ctx context.Context, p *authn.Principal, q CrisisQuery) (*AuditRun, error) {
	_, chain, err := a.chainOf(ctx, p, q)
	if err != nil {
		return nil, err
	}
	cs, err := a.verify(q.ID, chain)
	if err != nil {
		return nil, err
	}
	alarms, read, err := a.alarmsOf(ctx, p, q.ID)
	if err != nil {
		return nil, err
	}
	run := &AuditRun{At: time.Now(), Principal: p.Subject, Kind: "verify", OK: cs.Verified && len(alarms) == 0}
	if cs.Verified {
		signed := "head unsigned"
		if cs.HeadSigned {
			signed = "head signed by key " + cs.SignerKey
			if !cs.TrustedKey {
				signed += " (no audit key configured: not checked against it)"
			}
		}
		anchored := "not anchored yet"
		if cs.Anchored > 0 {
			anchored = fmt.Sprintf("holds its anchor at record %d", cs.Anchored)
		}
		run.Result = fmt.Sprintf("OK chain %s verifies: %d records, %s, %s", cs.Chain, cs.Records, signed, anchored)
	} else {
		run.Result = "FAILED " + cs.Problem
	}
	switch {
	case len(alarms) > 0:
		run.Result = fmt.Sprintf("FAILED %d alarm(s) about this crisis on the global chain: %s; %s", len(alarms), strings.Join(alarms, "; "),
			strings.TrimPrefix(strings.TrimPrefix(run.Result, "OK "), "FAILED "))
	case read:
		run.Result += "; no alarm about this crisis on the global chain"
	default:
		run.Result += "; the global chain was not read (it names every crisis: it needs confidential clearance)"
	}
	return run, a.record(ctx, p, q.ID, run.Kind, run.Result)
}

// alarmsOf lists the audit service's alarms about a crisis: the ALARM
// records of the global chain naming it (an event refused as forged, its
// chain isolated). The global chain names every crisis, so it is read only
// for a principal cleared for confidential crises (the API's rule; read
// false otherwise), as an audited read.
func (a *App) alarmsOf(ctx context.Context, p *authn.Principal, id string) (alarms []string, read bool, err error) {
	if !authz.CanSee(p, demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL, nil, "") {
		return nil, false, nil
	}
	global, err := audit.FetchChainVia(ctx, a.call, "", p.Subject)
	if err != nil {
		return nil, false, fmt.Errorf("the global audit chain: %w", err)
	}
	for _, r := range global.GetRecords() {
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_ALARM && r.GetCrisisId() == id {
			alarms = append(alarms, fmt.Sprintf("record %d (%s): %s", r.GetSequence(), r.GetEventTime().AsTime().UTC().Format(time.RFC3339), truncate(r.GetDetail(), 200)))
		}
	}
	return alarms, true, nil
}

// ReconcileRun cross-checks a crisis's histories with its chain, and its
// money and bookings with the histories' decisions, as `demarche audit
// reconcile` does, and records the result on the chain.
func (a *App) ReconcileRun(ctx context.Context, p *authn.Principal, q CrisisQuery) (*AuditRun, error) {
	_, chain, err := a.chainOf(ctx, p, q)
	if err != nil {
		return nil, err
	}
	hs, err := trail.FetchHistories(ctx, a.tc, q.ID)
	if err != nil {
		return nil, err
	}
	rep, err := audit.Reconcile(hs, chain.GetRecords())
	if err != nil {
		return nil, err
	}
	lines, bookings, skipped, err := a.moneyOf(ctx, q.ID)
	if err != nil {
		return nil, err
	}
	rep.ReconcileMoney(q.ID, hs, lines, bookings)
	run := &AuditRun{At: time.Now(), Principal: p.Subject, Kind: "reconcile", OK: rep.OK()}
	figures := fmt.Sprintf("%d histories, %d decisions, %d decision records, %d matched; %d events published, %d matched; %d disbursement line(s), %d booking(s), %d approval(s)",
		len(hs), rep.Decisions, rep.Records, rep.Matched, rep.Events, rep.EventsMatched, rep.Disbursements, rep.Bookings, rep.Approvals)
	if len(skipped) > 0 {
		figures += "; not read: " + strings.Join(skipped, "; ")
	}
	if rep.OK() {
		run.Result = "OK every decision and event has its audit record and the other way round: " + figures
	} else {
		run.Result = "FAILED " + strings.Join(rep.Problems(), "; ") + " (" + figures + ")"
	}
	return run, a.record(ctx, p, q.ID, run.Kind, run.Result)
}

// moneyOf is every fund's ledger lines and the crisis's bookings (real and
// drill), as the CLI's reconcile reads them; a fund whose ledger cannot be
// read is named in skipped.
func (a *App) moneyOf(ctx context.Context, crisisID string) (lines []*demarchev1.LedgerEntry, bookings []*demarchev1.Assignment, skipped []string, err error) {
	var bal demarchev1.BalanceResponse
	if err := natsrpc.Call(ctx, a.nc, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &bal); err != nil {
		return nil, nil, nil, fmt.Errorf("fund balances: %w", err)
	}
	for _, f := range bal.GetFunds() {
		if f.GetProblem() != "" {
			skipped = append(skipped, fmt.Sprintf("fund %s: %s", f.GetFund().GetId(), f.GetProblem()))
			continue
		}
		var l demarchev1.LedgerResponse
		if err := natsrpc.Call(ctx, a.nc, natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: f.GetFund().GetId()}, &l); err != nil {
			skipped = append(skipped, fmt.Sprintf("fund %s: %v", f.GetFund().GetId(), err))
			continue
		}
		lines = append(lines, l.GetEntries()...)
	}
	for _, drill := range []bool{false, true} {
		var as demarchev1.AssignmentsResponse
		if err := natsrpc.Call(ctx, a.nc, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: crisisID, Drill: drill}, &as); err != nil {
			return nil, nil, nil, fmt.Errorf("bookings of %s: %w", crisisID, err)
		}
		bookings = append(bookings, as.GetAssignments()...)
	}
	return lines, bookings, skipped, nil
}

// Evidence writes a crisis's evidence bundle (tar.gz, as `demarche audit
// export` writes it: histories, the audit chain, the decision trail, the
// figures, a manifest) with an unsigned manifest: the gateway holds no
// signing key. `demarche audit verify --bundle FILE` (without --public-key,
// which asks for a signed manifest) checks every file against the manifest
// and the chain inside, whose records and head the audit service signed.
// For auditors.
func (a *App) Evidence(ctx context.Context, p *authn.Principal, q CrisisQuery) ([]byte, error) {
	st, chain, err := a.chainOf(ctx, p, q)
	if err != nil {
		return nil, err
	}
	hs, err := trail.FetchHistories(ctx, a.tc, q.ID)
	if err != nil {
		return nil, err
	}
	figures := audit.FiguresOf(hs)
	if figures == nil { // still open: its figures so far
		figures = st.GetFigures()
	}
	var buf bytes.Buffer
	if _, err := audit.WriteBundle(&buf, audit.BundleInput{CrisisID: q.ID, Histories: hs, Chain: chain, Figures: figures,
		CreatedBy: p.Subject, Now: time.Now()}); err != nil {
		return nil, fmt.Errorf("evidence bundle of %s: %w", q.ID, err)
	}
	return buf.Bytes(), nil
}
