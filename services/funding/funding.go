// Package funding is the rapid-response funding service: funds with balances
// and per-crisis ceilings, requests approved by someone other than their
// requester, and disbursements paid exactly once.
//
// Each fund's ledger is a subject of the DEMARCHE_LEDGER stream, append-only.
// Every line carries the balance after it. A disbursement reads the last line
// and appends the next one on the condition that no line was appended in
// between (JetStream's expected-last-subject-sequence); a racing writer makes
// it read again. So the balance can never go below zero, whatever the
// interleaving, and the ledger always balances.
package funding

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
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

// DefaultFunds are the funds `demarche dev` starts with: two real ones and the
// drill fund (large, so drills never run it dry).
var DefaultFunds = []*demarchev1.Fund{
	{Id: "flexible-financing", Name: "Flexible rapid-response financing mechanism", OpeningBalanceUsd: 5_000_000, PerCrisisCeilingUsd: 1_000_000},
	{Id: "peacebuilding-irf", Name: "Peacebuilding Fund immediate-response facility", OpeningBalanceUsd: 10_000_000, PerCrisisCeilingUsd: 3_000_000},
	{Id: DrillFund, Name: "Drill fund (exercises only; no real money)", OpeningBalanceUsd: 1_000_000_000_000, PerCrisisCeilingUsd: 1_000_000_000, Drill: true},
}

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
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	funds  map[string]*demarchev1.Fund
	now    func() time.Time
}

// OpenStore creates or opens the ledger and the bucket, and opens every
// configured fund's ledger with its opening balance (once: a fund opened
// before keeps its ledger).
func OpenStore(ctx context.Context, js jetstream.JetStream, funds []*demarchev1.Fund) (*Store, error) {
	res := Resources()
	stream, err := natsx.Stream(ctx, js, res.Streams[0])
	if err != nil {
		return nil, fmt.Errorf("funding: ledger %w", err)
	}
	kv, err := natsx.KeyValue(ctx, js, res.Buckets[0])
	if err != nil {
		return nil, fmt.Errorf("funding: %w", err)
	}
	s := &Store{js: js, stream: stream, kv: kv, funds: map[string]*demarchev1.Fund{}, now: time.Now}
	for _, f := range funds {
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("funding: %w", err)
		}
		s.funds[f.GetId()] = f
		if _, _, err := s.last(ctx, f.GetId()); errors.Is(err, jetstream.ErrMsgNotFound) {
			entry := &demarchev1.LedgerEntry{Fund: f.GetId(), Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING,
				AmountUsd: f.GetOpeningBalanceUsd(), BalanceAfterUsd: f.GetOpeningBalanceUsd(), Key: "open-" + f.GetId(), At: timestamppb.New(s.now())}
			if _, err := s.append(ctx, entry, 0); err != nil && !isWrongLast(err) {
				return nil, fmt.Errorf("funding: open %s: %w", f.GetId(), err)
			}
		} else if err != nil {
			return nil, err
		}
	}
	// The balance gauges start from the ledgers, not from zero.
	if _, err := s.Balance(ctx, &demarchev1.FundQuery{}); err != nil {
		return nil, err
	}
	return s, nil
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

// last reads a fund's last ledger line and its stream sequence.
func (s *Store) last(ctx context.Context, fund string) (*demarchev1.LedgerEntry, uint64, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, subject(fund))
	if err != nil {
		return nil, 0, err
	}
	var e demarchev1.LedgerEntry
	if err := proto.Unmarshal(msg.Data, &e); err != nil {
		return nil, 0, fmt.Errorf("funding: ledger line %d: %w", msg.Sequence, err)
	}
	e.Sequence = msg.Sequence
	return &e, msg.Sequence, nil
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
		RequestedAt: timestamppb.New(s.now()), Status: demarchev1.FundingStatus_FUNDING_STATUS_PENDING, Drill: call.GetDrill()}
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
	for {
		rec, rev, err := s.record(ctx, call.GetCrisisId(), call.GetRequestId())
		if err != nil {
			return nil, err
		}
		if rec.GetRequestedBy() == call.GetDecidedBy() {
			return nil, fmt.Errorf("%w: four-eyes: %s requested %s and cannot approve or reject it", errs.ErrRule, call.GetDecidedBy(), call.GetRequestId())
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
	var entry *demarchev1.LedgerEntry
	replayed := false
	for attempt := 0; ; attempt++ {
		last, seq, err := s.last(ctx, fund.GetId())
		if err != nil {
			return nil, fmt.Errorf("funding: read ledger of %s: %w", fund.GetId(), err)
		}
		if last.GetKey() == call.GetKey() { // our own line, from an attempt whose answer was lost
			entry, replayed = last, true
			break
		}
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
		entry = &demarchev1.LedgerEntry{Fund: fund.GetId(), Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT,
			AmountUsd: amount, BalanceAfterUsd: last.GetBalanceAfterUsd() - amount, CrisisId: call.GetCrisisId(),
			RequestId: call.GetRequestId(), Key: call.GetKey(), At: timestamppb.New(s.now()), CrisisTotalsUsd: totals}
		ack, err := s.append(ctx, entry, seq)
		if isWrongLast(err) {
			if attempt > 1000 {
				return nil, fmt.Errorf("funding: ledger of %s too contended", fund.GetId())
			}
			continue // another line went in first: read again
		}
		if err != nil {
			return nil, fmt.Errorf("funding: append to ledger of %s: %w", fund.GetId(), err)
		}
		entry.Sequence = ack.Sequence
		if ack.Duplicate { // our line went in earlier; return the stored one
			replayed = true
			if stored, err := s.stream.GetMsg(ctx, ack.Sequence); err == nil {
				_ = proto.Unmarshal(stored.Data, entry)
				entry.Sequence = ack.Sequence
			}
		}
		break
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

// Ledger returns a fund's lines, oldest first.
func (s *Store) Ledger(ctx context.Context, q *demarchev1.FundQuery) (*demarchev1.LedgerResponse, error) {
	if _, ok := s.funds[q.GetFund()]; !ok {
		return nil, fmt.Errorf("%w: no fund %q (funds: %s)", errs.ErrNotFound, q.GetFund(), strings.Join(s.fundIDs(), ", "))
	}
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject(q.GetFund())}})
	if err != nil {
		return nil, fmt.Errorf("funding: read ledger: %w", err)
	}
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subject(q.GetFund())))
	if err != nil {
		return nil, fmt.Errorf("funding: read ledger: %w", err)
	}
	n := info.State.Subjects[subject(q.GetFund())]
	out := &demarchev1.LedgerResponse{}
	for uint64(len(out.Entries)) < n {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("funding: read ledger line %d of %d: %w", len(out.Entries)+1, n, err)
		}
		var e demarchev1.LedgerEntry
		if err := proto.Unmarshal(msg.Data(), &e); err != nil {
			return nil, err
		}
		meta, _ := msg.Metadata()
		if meta != nil {
			e.Sequence = meta.Sequence.Stream
		}
		out.Entries = append(out.Entries, &e)
	}
	return out, nil
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
		last, _, err := s.last(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("funding: balance of %s: %w", id, err)
		}
		var disbursed int64
		for _, v := range last.GetCrisisTotalsUsd() {
			disbursed += v
		}
		metrics.FundBalance.WithLabelValues(id).Set(float64(last.GetBalanceAfterUsd()))
		out.Funds = append(out.Funds, &demarchev1.FundBalance{Fund: s.funds[id], BalanceUsd: last.GetBalanceAfterUsd(), DisbursedUsd: disbursed})
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
	nc    *nats.Conn
	svc   micro.Service
	Store *Store
}

// Start connects, opens the ledgers and serves demarche.funding.{request,
// decide, disburse, balance, ledger}.
func Start(ctx context.Context, natsURL string, funds []*demarchev1.Fund, log *zap.Logger) (*Service, error) {
	log = log.Named("funding")
	if len(funds) == 0 {
		funds = DefaultFunds
	}
	nc, js, err := natsx.Connect(natsURL, "demarche-funding", log)
	if err != nil {
		return nil, fmt.Errorf("funding: %w", err)
	}
	st, err := OpenStore(ctx, js, funds)
	if err != nil {
		nc.Close()
		return nil, err
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name: natsrpc.FundingService, Version: "1.0.0",
		Description: "Rapid-response funds: requests, four-eyes decisions, exactly-once disbursements, append-only ledgers",
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("funding: micro service: %w", err)
	}
	g := svc.AddGroup(natsrpc.FundingGroup)
	eps := map[string]micro.Handler{
		"request":  natsrpc.Handler(func() *demarchev1.FundingRequestCall { return &demarchev1.FundingRequestCall{} }, st.Request),
		"decide":   natsrpc.Handler(func() *demarchev1.FundingDecideCall { return &demarchev1.FundingDecideCall{} }, st.Decide),
		"disburse": natsrpc.Handler(func() *demarchev1.DisburseCall { return &demarchev1.DisburseCall{} }, st.Disburse),
		"balance":  natsrpc.Handler(func() *demarchev1.FundQuery { return &demarchev1.FundQuery{} }, st.Balance),
		"ledger":   natsrpc.Handler(func() *demarchev1.FundQuery { return &demarchev1.FundQuery{} }, st.Ledger),
	}
	for _, name := range []string{"request", "decide", "disburse", "balance", "ledger"} {
		if err := g.AddEndpoint(name, eps[name]); err != nil {
			_ = svc.Stop()
			nc.Close()
			return nil, fmt.Errorf("funding: endpoint %s: %w", name, err)
		}
	}
	if err := natsrpc.Ready(nc); err != nil {
		_ = svc.Stop()
		nc.Close()
		return nil, fmt.Errorf("funding: %w", err)
	}
	log.Info("funding service ready", zap.Strings("funds", st.fundIDs()))
	return &Service{nc: nc, svc: svc, Store: st}, nil
}

// Stop stops serving and disconnects.
func (s *Service) Stop() {
	_ = s.svc.Stop()
	s.nc.Close()
}
