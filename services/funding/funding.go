// Package funding is the rapid-response funding service: funds with balances
// and per-crisis ceilings, requests approved by someone other than their
// requester, and disbursements paid exactly once.
//
// Each fund's ledger is a subject of the DEMARCHE_LEDGER stream, append-only.
// Every line carries the balance after it. A disbursement reads the last line
// and appends the next one on the condition that no line was appended in
// between (JetStream's expected-last-subject-sequence); a racing writer makes
// it read again. So the balance can never go below zero, whatever the
// interleaving, and the ledger always balances. Lines are hash-linked and
// every read checks them (ledger.go); funds come from a configuration file
// (config.go) and are opened only by an explicit, audited act (open.go).
//
// Authority comes from the crisis's workflow, never from a request's body
// (authority.go): request, decide and disburse each name the decision they
// carry out, the service finds it in the crisis's workflow (the
// crisis.authority query) and takes requester, approver, terms and drill flag
// from there; a call naming no such decision is refused and writes nothing.
package funding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Names of the durable state.
const (
	LedgerStream = "DEMARCHE_LEDGER"
	ledgerRoot   = "demarche.ledger"
	// Bucket holds requests (req.<crisis>.<request>) and paid keys (paid.<key>).
	Bucket = "DEMARCHE_FUNDING"
)

// DrillFund is the fund drills draw from: drills run the same requests,
// decisions and disbursements as real crises, on a ledger of their own.
const DrillFund = demarchev1.DrillFundID

// drillRule refuses a drill's call on a real fund and a real crisis's call on
// a drill fund: drills live in their own world.
func drillRule(fund *demarchev1.Fund, drill bool) error {
	switch {
	case drill && !fund.GetDrill():
		return fmt.Errorf("%w: drill-fund: a drill may draw only from a drill fund, not from %s", errs.ErrRule, fund.GetId())
	case !drill && fund.GetDrill():
		return fmt.Errorf("%w: drill-fund: %s is a drill fund; only drills may draw from it", errs.ErrRule, fund.GetId())
	}
	return nil
}

// Store is the funding service's state and rules, usable without NATS micro.
type Store struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	kv       jetstream.KeyValue
	funds    map[string]*demarchev1.Fund
	now      func() time.Time
	log      *zap.Logger
	verified verifiedTail
	// alarmed is, per fund, the reason of its last alarm.
	alarmed struct {
		mu      sync.Mutex
		reasons map[string]string
	}
	// decisions is where the decisions the service acts on are checked.
	decisions crisis.DecisionSource
}

// OpenOptions configure a store. A store never opens a fund: opening one
// (writing its opening line) is an explicit, audited act of provisioning,
// OpenFund (`demarche admin open-fund`, or `demarche dev` on a data folder it
// creates), done before the service starts. A store that finds a configured
// fund without a ledger, whether it was opened before (its marker says when
// and by whom) or never, refuses to start and raises the alarm: a fund opened
// before whose ledger has gone is never a fresh balance.
type OpenOptions struct {
	Log *zap.Logger
	// Decisions answers for the crises' workflows (crisis.TemporalDecisions):
	// without it, request, decide and disburse are refused.
	Decisions crisis.DecisionSource
}

// markerKey records, in the bucket, that a fund was opened: its opening line.
func markerKey(fund string) string { return "fund." + fund }

// OpenStore binds the ledger and the bucket and checks every configured
// fund's ledger. A fund whose ledger is broken does not stop the others: it
// is refused on every read, with the reason, and logged as an alarm. A fund
// without any ledger (gone, or never opened) stops the start: the error
// (matching ErrLedgerMissing, else ErrNotOpened) names every such fund and
// says what to do, and each raises the alarm.
func OpenStore(ctx context.Context, js jetstream.JetStream, funds []*demarchev1.Fund, opts OpenOptions) (*Store, error) {
	if len(funds) == 0 {
		return nil, fmt.Errorf("%w: funding: no funds configured: pass a funds file (demarche serve funding --funds FILE; see deploy/funds.example.yaml)", errs.ErrInvalid)
	}
	res := Resources()
	stream, err := natsx.Stream(ctx, js, res.Streams[0])
	if err != nil {
		return nil, fmt.Errorf("funding: ledger %w", err)
	}
	kv, err := natsx.KeyValue(ctx, js, res.Buckets[0])
	if err != nil {
		return nil, fmt.Errorf("funding: %w", err)
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	s := &Store{js: js, stream: stream, kv: kv, funds: map[string]*demarchev1.Fund{}, now: time.Now, log: opts.Log,
		verified: verifiedTail{lines: map[string]*demarchev1.LedgerEntry{}}, decisions: opts.Decisions}
	var missing []error
	for _, f := range funds {
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("funding: %w", err)
		}
		if _, dup := s.funds[f.GetId()]; dup {
			return nil, fmt.Errorf("%w: funding: fund %s is configured twice", errs.ErrInvalid, f.GetId())
		}
		s.funds[f.GetId()] = f
		last, err := s.tail(ctx, f.GetId())
		switch {
		case errors.Is(err, errs.ErrUnavailable):
			return nil, err
		case err != nil:
			s.alarm(f.GetId(), err)
		case last != nil:
			if err := s.mark(ctx, last); err != nil {
				return nil, err
			}
		default:
			err := s.noLedger(ctx, f.GetId())
			if errors.Is(err, errs.ErrUnavailable) {
				return nil, err
			}
			s.alarm(f.GetId(), err)
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		if nc := js.Conn(); nc != nil {
			_ = nc.FlushTimeout(5 * time.Second) // the alarms leave before the caller closes the connection
		}
		return nil, fmt.Errorf("funding: refusing to start: %d configured fund(s) without a ledger: %w", len(missing), errors.Join(missing...))
	}
	// The balance gauges start from the ledgers, not from zero.
	if _, err := s.Balance(ctx, &demarchev1.FundQuery{}); err != nil {
		return nil, err
	}
	return s, nil
}

// alarm logs a fund that cannot be used, and counts it: once per fund and
// reason (every read of a broken fund fails the same way; one alarm says it).
func (s *Store) alarm(fund string, err error) {
	kind := "broken"
	if errors.Is(err, ErrLedgerMissing) {
		kind = "missing"
	} else if errors.Is(err, ErrNotOpened) {
		kind = "not-opened"
	}
	s.alarmed.mu.Lock()
	if s.alarmed.reasons == nil {
		s.alarmed.reasons = map[string]string{}
	}
	already := s.alarmed.reasons[fund] == err.Error()
	s.alarmed.reasons[fund] = err.Error()
	s.alarmed.mu.Unlock()
	if already {
		return
	}
	ledgerAlarms.WithLabelValues(kind).Inc()
	s.log.Error("ALARM: fund refused until its ledger is repaired", zap.String("fund", fund), zap.String("alarm", kind),
		zap.String("reason", err.Error()), zap.Error(err))
	// And where every alarm is watched: the audit service records it on the
	// global chain (core NATS; a lost message leaves the log line and the count).
	if s.js != nil && s.js.Conn() != nil {
		if b, merr := proto.Marshal(&demarchev1.AuditAlarm{Kind: LedgerAlarmKind, EventId: "ledger-" + fund,
			Reason: fmt.Sprintf("fund %s (%s): %v", fund, kind, err), At: timestamppb.New(s.now())}); merr == nil {
			if perr := s.js.Conn().Publish(AlarmSubject, b); perr != nil {
				s.log.Error("ALARM not sent to the audit service", zap.String("fund", fund), zap.Error(perr))
			}
		}
	}
}

// AlarmSubject is where alarms are published (the audit service's,
// services/audit SubjectAlarm); LedgerAlarmKind is a broken ledger's kind there.
const (
	AlarmSubject    = "demarche.audit.alarm"
	LedgerAlarmKind = "ledger-broken"
)

// checked raises the alarm when a read found a fund's ledger broken or gone
// (not when NATS was unavailable: that is no fault of the ledger), and
// returns err unchanged.
func (s *Store) checked(fund string, err error) error {
	if errors.Is(err, ErrLedgerBroken) || errors.Is(err, ErrLedgerMissing) {
		s.alarm(fund, err)
	}
	return err
}

// Alarms is, per fund, why it was last alarmed (for tests and the log).
func (s *Store) Alarms() map[string]string {
	s.alarmed.mu.Lock()
	defer s.alarmed.mu.Unlock()
	out := make(map[string]string, len(s.alarmed.reasons))
	for k, v := range s.alarmed.reasons {
		out[k] = v
	}
	return out
}

// watch checks each fund's ledger as soon as a line is stored on it, so a
// line nobody but the funding service should have written (or a removed
// one) raises the alarm within moments even when nobody reads the fund.
func (s *Store) watch(ctx context.Context) (stop func(), err error) {
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{ledgerRoot + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("funding: ledger watchdog: %w", err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		fund := strings.TrimPrefix(msg.Subject(), ledgerRoot+".")
		if _, ok := s.funds[fund]; !ok {
			s.alarm(fund, &LedgerError{Fund: fund, Problem: "a line was stored for a fund this service does not hold: written by someone else"})
			return
		}
		_, _ = s.usable(wctx, fund) // raises the alarm when broken
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("funding: ledger watchdog: %w", err)
	}
	return func() { cc.Stop(); cancel() }, nil
}

// ErrNotOpened is matched when a configured fund was never opened and
// opening was not asked for.
var ErrNotOpened = errs.Sentinel("fund not opened", errs.ErrNotFound)

// mark records that a fund has a ledger (kept: its opening line).
func (s *Store) mark(ctx context.Context, line *demarchev1.LedgerEntry) error {
	b, err := proto.Marshal(line)
	if err != nil {
		return err
	}
	if _, err := s.kv.Create(ctx, markerKey(line.GetFund()), b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: funding: record that %s is open: %v", errs.ErrUnavailable, line.GetFund(), err)
	}
	return nil
}

// noLedger explains a fund without any ledger line: vanished (it was opened
// before) or never opened.
func (s *Store) noLedger(ctx context.Context, fund string) error {
	entry, err := s.kv.Get(ctx, markerKey(fund))
	switch {
	case err == nil:
		var opened demarchev1.LedgerEntry
		if err := proto.Unmarshal(entry.Value(), &opened); err != nil {
			return fmt.Errorf("%w: fund %s was opened but its ledger is gone, and its opening mark is unreadable (%v): it is not re-opened; restore the ledger stream %s from a backup",
				ErrLedgerMissing, fund, err, LedgerStream)
		}
		return fmt.Errorf("%w: fund %s was opened (%s, by %s) but its ledger is gone: it is not re-opened; restore the ledger stream %s from a backup",
			ErrLedgerMissing, fund, opened.GetAt().AsTime().UTC().Format(time.RFC3339), opened.GetOpenedBy(), LedgerStream)
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return fmt.Errorf("%w: fund %s is configured but has never been opened: opening a fund is an explicit, audited act: demarche admin open-fund --funds FILE --fund %s (as the provisioner), then start the service", ErrNotOpened, fund, fund)
	default:
		return fmt.Errorf("%w: funding: %v", errs.ErrUnavailable, err)
	}
}

// usable is a fund's verified last line, or why the fund cannot be used.
func (s *Store) usable(ctx context.Context, fund string) (*demarchev1.LedgerEntry, error) {
	last, err := s.tail(ctx, fund)
	if err != nil {
		return nil, s.checked(fund, err)
	}
	if last == nil {
		return nil, s.checked(fund, s.noLedger(ctx, fund))
	}
	return last, nil
}

// Resources are the ledger stream and the requests bucket, for the
// provisioning identity (the service itself only binds to them).
func Resources() natsx.Resources {
	return natsx.Resources{
		Streams: []jetstream.StreamConfig{{
			Name: LedgerStream, Description: "Démarche fund ledgers, append-only, one subject per fund",
			Subjects: []string{ledgerRoot + ".>"}, Storage: jetstream.FileStorage, Duplicates: 7 * 24 * time.Hour,
			DenyDelete: true, DenyPurge: true,
		}},
		Buckets: []jetstream.KeyValueConfig{{Bucket: Bucket, Description: "Démarche funding requests and paid keys", Storage: jetstream.FileStorage}},
	}
}

func subject(fund string) string { return ledgerRoot + "." + fund }

func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// append adds a line if the fund's last line is still afterSeq.
func (s *Store) append(ctx context.Context, e *demarchev1.LedgerEntry, afterSeq uint64) (*jetstream.PubAck, error) {
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, err
	}
	ack, err := s.js.Publish(ctx, subject(e.GetFund()), b, jetstream.WithExpectLastSequencePerSubject(afterSeq), jetstream.WithMsgID(e.GetKey()))
	if err == nil && !ack.Duplicate {
		metrics.FundBalance.WithLabelValues(e.GetFund()).Set(float64(e.GetBalanceAfterUsd()))
	}
	return ack, err
}

func reqKey(crisis, id string) string { return "req." + crisis + "." + id }

func (s *Store) record(ctx context.Context, crisis, id string) (*demarchev1.FundingRecord, uint64, error) {
	entry, err := s.kv.Get(ctx, reqKey(crisis, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%w: no funding request %s for crisis %s", errs.ErrNotFound, id, crisis)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("funding: %w", err)
	}
	var r demarchev1.FundingRecord
	return &r, entry.Revision(), proto.Unmarshal(entry.Value(), &r)
}

// Request files a request. Filing the same request again (same crisis, id,
// fund and amount) returns it; a different one under a used id is refused.
func (s *Store) Request(ctx context.Context, call *demarchev1.FundingRequestCall) (*demarchev1.FundingRecord, error) {
	call, err := s.requestAuthority(ctx, call)
	if err != nil {
		return nil, err
	}
	fund, ok := s.funds[call.GetRequest().GetFund()]
	if !ok {
		return nil, fmt.Errorf("%w: no fund %q (funds: %s)", errs.ErrNotFound, call.GetRequest().GetFund(), strings.Join(s.fundIDs(), ", "))
	}
	if err := drillRule(fund, call.GetDrill()); err != nil {
		return nil, err
	}
	if call.GetRequest().GetAmountUsd() > fund.GetPerCrisisCeilingUsd() {
		return nil, fmt.Errorf("%w: ceiling: %d exceeds %s's per-crisis ceiling of %d", errs.ErrRule, call.GetRequest().GetAmountUsd(), fund.GetId(), fund.GetPerCrisisCeilingUsd())
	}
	rec := &demarchev1.FundingRecord{CrisisId: call.GetCrisisId(), Request: call.GetRequest(), RequestedBy: call.GetRequestedBy(),
		RequestedAt: timestamppb.New(s.now()), Status: demarchev1.FundingStatus_FUNDING_STATUS_PENDING, Drill: call.GetDrill(),
		RequestedUnder: call.GetDecision().GetDecisionId(), ApprovalsRequired: ApprovalsRequired(fund, call.GetRequest().GetAmountUsd())}
	b, err := proto.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if _, err := s.kv.Create(ctx, reqKey(call.GetCrisisId(), call.GetRequest().GetRequestId()), b); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("funding: %w", err)
		}
		old, _, err := s.record(ctx, call.GetCrisisId(), call.GetRequest().GetRequestId())
		if err != nil {
			return nil, err
		}
		if !proto.Equal(old.GetRequest(), call.GetRequest()) || old.GetRequestedBy() != call.GetRequestedBy() || old.GetDrill() != call.GetDrill() {
			return nil, fmt.Errorf("%w: request %s of crisis %s exists with other terms", errs.ErrConflict, call.GetRequest().GetRequestId(), call.GetCrisisId())
		}
		return old, nil
	}
	return rec, nil
}

// Decide approves or rejects a pending request. Four-eyes: the requester can
// never decide it. Deciding again the same way returns the record.
func (s *Store) Decide(ctx context.Context, call *demarchev1.FundingDecideCall) (*demarchev1.FundingRecord, error) {
	call, approvers, err := s.decideAuthority(ctx, call)
	if err != nil {
		return nil, err
	}
	for {
		rec, rev, err := s.record(ctx, call.GetCrisisId(), call.GetRequestId())
		if err != nil {
			return nil, err
		}
		if rec.GetRequestedBy() == call.GetDecidedBy() {
			return nil, fmt.Errorf("%w: four-eyes: %s requested %s and cannot approve or reject it", errs.ErrRule, call.GetDecidedBy(), call.GetRequestId())
		}
		// The quorum, checked again here as four-eyes is: an approval is
		// carried out only with the distinct approvers the request needs
		// recorded in the crisis (the requester never counts).
		if n := int32(len(slices.DeleteFunc(approvers, func(p string) bool { return p == rec.GetRequestedBy() }))); call.GetApprove() && n < max(rec.GetApprovalsRequired(), 1) {
			return nil, fmt.Errorf("%w: quorum: request %s needs %d distinct approvers; crisis %s has recorded %d (%s)", errs.ErrRule,
				call.GetRequestId(), rec.GetApprovalsRequired(), call.GetCrisisId(), n, strings.Join(approvers, ", "))
		}
		want := demarchev1.FundingStatus_FUNDING_STATUS_REJECTED
		if call.GetApprove() {
			want = demarchev1.FundingStatus_FUNDING_STATUS_APPROVED
		}
		if rec.GetStatus() != demarchev1.FundingStatus_FUNDING_STATUS_PENDING {
			if rec.GetDecidedBy() == call.GetDecidedBy() && (rec.GetStatus() == want || (want == demarchev1.FundingStatus_FUNDING_STATUS_APPROVED && rec.GetStatus() == demarchev1.FundingStatus_FUNDING_STATUS_DISBURSED)) {
				return rec, nil // a retry
			}
			return nil, fmt.Errorf("%w: request %s is already %s", errs.ErrConflict, call.GetRequestId(), statusSlug(rec.GetStatus()))
		}
		rec.Status, rec.DecidedBy, rec.DecidedAt = want, call.GetDecidedBy(), timestamppb.New(s.now())
		rec.DecidedUnder = call.GetDecision().GetDecisionId()
		b, err := proto.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if _, err := s.kv.Update(ctx, reqKey(call.GetCrisisId(), call.GetRequestId()), b, rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // changed meanwhile: read again
			}
			return nil, fmt.Errorf("funding: %w", err)
		}
		return rec, nil
	}
}

func statusSlug(s demarchev1.FundingStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "FUNDING_STATUS_"))
}

// Disburse pays an approved request once per key: a retried call returns the
// ledger line that paid. Refused with ErrRule when the fund's balance or the
// crisis's ceiling would be exceeded.
func (s *Store) Disburse(ctx context.Context, call *demarchev1.DisburseCall) (*demarchev1.DisburseResult, error) {
	approval, err := s.disburseAuthority(ctx, call)
	if err != nil {
		return nil, err
	}
	if paid, err := s.paid(ctx, call.GetKey()); err != nil || paid != nil {
		return paid, err
	}
	rec, rev, err := s.record(ctx, call.GetCrisisId(), call.GetRequestId())
	if err != nil {
		return nil, err
	}
	switch rec.GetStatus() {
	case demarchev1.FundingStatus_FUNDING_STATUS_APPROVED:
	case demarchev1.FundingStatus_FUNDING_STATUS_DISBURSED:
		if rec.GetDisbursementKey() != call.GetKey() {
			return nil, fmt.Errorf("%w: request %s was already paid under key %s", errs.ErrConflict, call.GetRequestId(), rec.GetDisbursementKey())
		}
		// Paid by a concurrent attempt since we looked: answer with its line.
		if paid, err := s.paid(ctx, call.GetKey()); err != nil || paid != nil {
			return paid, err
		}
	default:
		return nil, fmt.Errorf("%w: approval-first: request %s is %s, not approved", errs.ErrRule, call.GetRequestId(), statusSlug(rec.GetStatus()))
	}
	if err := approval.matches(rec); err != nil {
		return nil, err
	}
	fund := s.funds[rec.GetRequest().GetFund()]
	if fund == nil {
		return nil, fmt.Errorf("%w: no fund %q", errs.ErrNotFound, rec.GetRequest().GetFund())
	}
	if rec.GetDrill() != call.GetDrill() {
		return nil, fmt.Errorf("%w: drill-fund: request %s was filed by a %s, not a %s", errs.ErrRule, call.GetRequestId(), drillWord(rec.GetDrill()), drillWord(call.GetDrill()))
	}
	if err := drillRule(fund, call.GetDrill()); err != nil {
		return nil, err
	}
	amount := rec.GetRequest().GetAmountUsd()
	entry, replayed, err := s.appendLine(ctx, fund.GetId(), call.GetKey(), func(last *demarchev1.LedgerEntry) (*demarchev1.LedgerEntry, error) {
		if last.GetBalanceAfterUsd() < amount {
			return nil, fmt.Errorf("%w: balance: %s holds %d, request %s needs %d", errs.ErrRule, fund.GetId(), last.GetBalanceAfterUsd(), call.GetRequestId(), amount)
		}
		totals := map[string]int64{}
		for k, v := range last.GetCrisisTotalsUsd() {
			totals[k] = v
		}
		if totals[call.GetCrisisId()]+amount > fund.GetPerCrisisCeilingUsd() {
			return nil, fmt.Errorf("%w: ceiling: crisis %s would receive %d from %s, above its ceiling of %d", errs.ErrRule,
				call.GetCrisisId(), totals[call.GetCrisisId()]+amount, fund.GetId(), fund.GetPerCrisisCeilingUsd())
		}
		totals[call.GetCrisisId()] += amount
		return &demarchev1.LedgerEntry{Fund: fund.GetId(), Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT,
			AmountUsd: amount, BalanceAfterUsd: last.GetBalanceAfterUsd() - amount, CrisisId: call.GetCrisisId(),
			RequestId: call.GetRequestId(), Key: call.GetKey(), At: timestamppb.New(s.now()), CrisisTotalsUsd: totals,
			Decision: approval.ref}, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.markPaid(ctx, call, entry, rec, rev); err != nil {
		return nil, err
	}
	return &demarchev1.DisburseResult{Entry: entry, Replayed: replayed}, nil
}

func drillWord(drill bool) string {
	if drill {
		return "drill"
	}
	return "real crisis"
}

func (s *Store) paid(ctx context.Context, key string) (*demarchev1.DisburseResult, error) {
	kv, err := s.kv.Get(ctx, "paid."+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("funding: %w", err)
	}
	var e demarchev1.LedgerEntry
	if err := proto.Unmarshal(kv.Value(), &e); err != nil {
		return nil, err
	}
	return &demarchev1.DisburseResult{Entry: &e, Replayed: true}, nil
}

func (s *Store) markPaid(ctx context.Context, call *demarchev1.DisburseCall, entry *demarchev1.LedgerEntry, rec *demarchev1.FundingRecord, rev uint64) error {
	b, err := proto.Marshal(entry)
	if err != nil {
		return err
	}
	if _, err := s.kv.Create(ctx, "paid."+call.GetKey(), b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("funding: record payment %s: %w", call.GetKey(), err)
	}
	rec.Status, rec.DisbursementKey = demarchev1.FundingStatus_FUNDING_STATUS_DISBURSED, call.GetKey()
	rb, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := s.kv.Update(ctx, reqKey(call.GetCrisisId(), call.GetRequestId()), rb, rev); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("funding: mark %s paid: %w", call.GetRequestId(), err)
	}
	return nil
}

// Ledger returns a fund's lines, oldest first, after checking every link:
// a broken ledger is refused with the line where it breaks.
func (s *Store) Ledger(ctx context.Context, q *demarchev1.FundQuery) (*demarchev1.LedgerResponse, error) {
	if _, ok := s.funds[q.GetFund()]; !ok {
		return nil, fmt.Errorf("%w: no fund %q (funds: %s)", errs.ErrNotFound, q.GetFund(), strings.Join(s.fundIDs(), ", "))
	}
	lines, err := s.readLines(ctx, q.GetFund(), 0, 0)
	if err != nil {
		return nil, s.checked(q.GetFund(), err)
	}
	if len(lines) == 0 {
		return nil, s.checked(q.GetFund(), s.noLedger(ctx, q.GetFund()))
	}
	if err := VerifyLines(q.GetFund(), lines, nil); err != nil {
		return nil, s.checked(q.GetFund(), err)
	}
	return &demarchev1.LedgerResponse{Entries: lines}, nil
}

// Balance reports funds' balances (one fund, or all).
func (s *Store) Balance(ctx context.Context, q *demarchev1.FundQuery) (*demarchev1.BalanceResponse, error) {
	ids := s.fundIDs()
	if q.GetFund() != "" {
		if _, ok := s.funds[q.GetFund()]; !ok {
			return nil, fmt.Errorf("%w: no fund %q (funds: %s)", errs.ErrNotFound, q.GetFund(), strings.Join(ids, ", "))
		}
		ids = []string{q.GetFund()}
	}
	out := &demarchev1.BalanceResponse{}
	for _, id := range ids {
		last, err := s.usable(ctx, id)
		if errors.Is(err, errs.ErrUnavailable) || (err != nil && q.GetFund() != "") {
			return nil, err
		}
		if err != nil { // one fund's broken ledger does not hide the others
			out.Funds = append(out.Funds, &demarchev1.FundBalance{Fund: s.funds[id], Problem: err.Error()})
			continue
		}
		var disbursed int64
		for _, v := range last.GetCrisisTotalsUsd() {
			disbursed += v
		}
		metrics.FundBalance.WithLabelValues(id).Set(float64(last.GetBalanceAfterUsd()))
		// The opening line is the configured opening balance (OpenFund refuses
		// any other), so what the ledger holds beyond it and what it paid out
		// was contributed.
		contributed := last.GetBalanceAfterUsd() + disbursed - s.funds[id].GetOpeningBalanceUsd()
		out.Funds = append(out.Funds, &demarchev1.FundBalance{Fund: s.funds[id], BalanceUsd: last.GetBalanceAfterUsd(), DisbursedUsd: disbursed,
			ContributedUsd: contributed, Entries: int32(last.GetLine())})
	}
	return out, nil
}

func (s *Store) fundIDs() []string {
	ids := make([]string, 0, len(s.funds))
	for id := range s.funds {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Service is the running funding micro service.
type Service struct {
	nc        *nats.Conn
	svc       *natsrpc.Server
	Store     *Store
	stopWatch func()
	tc        client.Client // the read-only Temporal client it dialled, if any
}

// Config configures the funding service.
type Config struct {
	NATSURL string
	// Funds are the configured funds (LoadFunds): required, and each must
	// have been opened (OpenFund) before the service starts.
	Funds []*demarchev1.Fund
	// Decisions answers for the crises' workflows: request, decide and
	// disburse act only on a decision found there. Nil: the service dials
	// Temporal at TemporalAddress as the funding identity (read-only on
	// crisis workflows) and asks them; without either, all are refused.
	Decisions                  crisis.DecisionSource
	TemporalAddress, Namespace string
}

// StartWith connects, checks the ledgers (refusing to start, with the alarm,
// when a configured fund has none: see OpenStore) and serves demarche.funding.{request, decide, disburse,
// contribute, balance, ledger}.
func StartWith(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	log = log.Named("funding")
	funds := cfg.Funds
	if len(funds) == 0 {
		return nil, fmt.Errorf("%w: funding: no funds configured: pass a funds file (demarche serve funding --funds FILE; see deploy/funds.example.yaml); demo funds are for demarche dev only", errs.ErrInvalid)
	}
	var tc client.Client
	if cfg.Decisions == nil && cfg.TemporalAddress != "" {
		c, err := temporalx.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), temporalx.As("funding"))
		if err != nil {
			return nil, fmt.Errorf("funding: decisions are checked in the crises' workflows: %w", err)
		}
		tc, cfg.Decisions = c, crisis.TemporalDecisions{Client: c}
	}
	if cfg.Decisions == nil {
		log.Warn("no Temporal address: every request, decision and disbursement is refused (decisions cannot be checked)")
	}
	closeTC := func() {
		if tc != nil {
			tc.Close()
		}
	}
	nc, js, err := natsx.Connect(cfg.NATSURL, "demarche-funding", log)
	if err != nil {
		closeTC()
		return nil, fmt.Errorf("funding: %w", err)
	}
	st, err := OpenStore(ctx, js, funds, OpenOptions{Log: log, Decisions: cfg.Decisions})
	if err != nil {
		nc.Close()
		closeTC()
		return nil, err
	}
	svc, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{
		Name: natsrpc.FundingService, Version: "1.0.0", Group: natsrpc.FundingGroup, Log: log,
		Description: "Rapid-response funds: requests, four-eyes decisions, exactly-once disbursements, append-only ledgers",
	},
		natsrpc.Typed("request", "files a funding request of a crisis's decision",
			func() *demarchev1.FundingRequestCall { return &demarchev1.FundingRequestCall{} }, st.Request),
		natsrpc.Typed("decide", "approves or rejects a request (four-eyes)",
			func() *demarchev1.FundingDecideCall { return &demarchev1.FundingDecideCall{} }, st.Decide),
		natsrpc.Typed("disburse", "pays an approved request, exactly once",
			func() *demarchev1.DisburseCall { return &demarchev1.DisburseCall{} }, st.Disburse),
		natsrpc.Typed("contribute", "credits a voluntary contribution to a fund (audited on the global chain)",
			func() *demarchev1.ContributeCall { return &demarchev1.ContributeCall{} }, st.Contribute),
		natsrpc.Typed("balance", "a fund's balance",
			func() *demarchev1.FundQuery { return &demarchev1.FundQuery{} }, st.Balance),
		natsrpc.Typed("ledger", "a fund's ledger",
			func() *demarchev1.FundQuery { return &demarchev1.FundQuery{} }, st.Ledger),
	)
	if err != nil {
		nc.Close()
		closeTC()
		return nil, fmt.Errorf("funding: %w", err)
	}
	stopWatch, err := st.watch(ctx)
	if err != nil {
		svc.Stop()
		nc.Close()
		return nil, err
	}
	log.Info("funding service ready", zap.Strings("funds", st.fundIDs()))
	return &Service{nc: nc, svc: svc, Store: st, stopWatch: stopWatch, tc: tc}, nil
}

// Stop stops serving and disconnects.
func (s *Service) Stop() {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.svc.Stop()
	natsx.DrainClose(s.nc, 10*time.Second) // answer what was taken
	if s.tc != nil {
		s.tc.Close()
	}
}
