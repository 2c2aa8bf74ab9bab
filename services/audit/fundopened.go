package audit

import (
	"context"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

// FundOpenerIdentity is the principal of every fund-opening record: NATS lets
// only the provisioner identity ask for one (natsauth: demarche.audit.fund-opened),
// so the record names who asked from the credentials it used, not from the
// request's body (whose opened_by, what the opener declared, is in the detail).
const FundOpenerIdentity = "provisioner"

// RecordFundOpening records a fund's opening (funding.OpenFund) on the global
// chain: a record of kind OPERATION, event type funding.FundOpenedEventType,
// whose detail says which fund opened with which balance, when, what the
// opener declared, and which ledger line (hash) holds it. Recording the same
// opening line again stores nothing new.
func (s *Store) RecordFundOpening(ctx context.Context, line *demarchev1.LedgerEntry) (*demarchev1.AuditOperationResponse, error) {
	if err := funding.OpeningLine(line); err != nil {
		return nil, fmt.Errorf("audit: not a fund's opening line: %w", err)
	}
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION, Chain: GlobalChain,
		EventId:   "fund-opened-" + line.GetFund() + "-" + hex.EncodeToString(line.GetHash()[:8]),
		EventType: funding.FundOpenedEventType, EventSource: "demarche admin open-fund", EventTime: line.GetAt(),
		Principal: FundOpenerIdentity, RecordedAt: timestamppb.New(s.now()),
		Detail: fmt.Sprintf("%s: fund %s opened with %d USD (opening balance) at %s; opened by: %s; ledger %s line 1 (stream sequence %d), hash %s",
			funding.FundOpenedEventType, line.GetFund(), line.GetAmountUsd(), line.GetAt().AsTime().UTC().Format("2006-01-02T15:04:05Z"),
			line.GetOpenedBy(), funding.LedgerStream, line.GetSequence(), hex.EncodeToString(line.GetHash())),
	}
	rec, _, err := s.append(ctx, r)
	if err != nil {
		return nil, err
	}
	return &demarchev1.AuditOperationResponse{Record: rec}, nil
}

// RulesChangedEventType is the event_type of the audit record of early-warning
// rules put into force without a restart.
const RulesChangedEventType = "rules-changed"

// RecordRulesChange records early-warning rules put into force on the global
// chain: a record of kind OPERATION, event type RulesChangedEventType, whose
// principal is the person who applied them and whose detail says which
// version replaced which, the file's digest and name, and the rules bucket's
// revision. NATS lets only early warning's credential ask
// (demarche.audit.rules-changed), and early warning takes the person from the
// gateway, which takes it from the caller's credential. Recording the same
// revision again stores nothing new (its event id is the revision's).
func (s *Store) RecordRulesChange(ctx context.Context, ch *demarchev1.RulesChanged) (*demarchev1.AuditOperationResponse, error) {
	switch {
	case ch.GetVersion() == "" || ch.GetRevision() == 0:
		return nil, fmt.Errorf("%w: rules change: version and revision are required", errs.ErrInvalid)
	case ch.GetAppliedBy() == "":
		return nil, fmt.Errorf("%w: rules change: applied_by is required (who applied the rules)", errs.ErrInvalid)
	case ch.GetAppliedAt() == nil:
		return nil, fmt.Errorf("%w: rules change: applied_at is required", errs.ErrInvalid)
	}
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION, Chain: GlobalChain,
		EventId:   fmt.Sprintf("rules-changed-%d-%.16s", ch.GetRevision(), ch.GetDigest()),
		EventType: RulesChangedEventType, EventSource: origin.EarlyWarningSource, EventTime: ch.GetAppliedAt(),
		Principal: ch.GetAppliedBy(), RecordedAt: timestamppb.New(s.now()),
		Detail: fmt.Sprintf("%s: early-warning rules %s replaced %s without a restart; file %q, sha256 %s; applied by %s at %s; bucket EARLYWARNING_RULES key active revision %d",
			RulesChangedEventType, ch.GetVersion(), ch.GetPreviousVersion(), ch.GetName(), ch.GetDigest(), ch.GetAppliedBy(),
			ch.GetAppliedAt().AsTime().UTC().Format("2006-01-02T15:04:05Z"), ch.GetRevision()),
	}
	rec, _, err := s.append(ctx, r)
	if err != nil {
		return nil, err
	}
	return &demarchev1.AuditOperationResponse{Record: rec}, nil
}

// RecordFundContribution records a voluntary contribution credited to a fund
// (funding.Store.Contribute) on the global chain: a record of kind OPERATION,
// event type funding.FundContributionEventType, whose principal is who
// credited it (the gateway stamped it from the credential; NATS lets only
// the funding service ask: demarche.audit.fund-contribution) and whose detail
// names the donor, amount, reference and ledger line (hash). Recording the
// same line again stores nothing new.
func (s *Store) RecordFundContribution(ctx context.Context, line *demarchev1.LedgerEntry) (*demarchev1.AuditOperationResponse, error) {
	if err := funding.ContributionLine(line); err != nil {
		return nil, fmt.Errorf("audit: not a fund's contribution line: %w", err)
	}
	k := line.GetContribution()
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION, Chain: GlobalChain,
		EventId:   funding.ContributionEventID(line),
		EventType: funding.FundContributionEventType, EventSource: "demarche fund contribute", EventTime: line.GetAt(),
		Principal: k.GetContributedBy(), RecordedAt: timestamppb.New(s.now()),
		Detail: fmt.Sprintf("%s: fund %s credited %d %s from %s (reference %q) at %s; balance after %d USD; ledger %s line %d (stream sequence %d), hash %s",
			funding.FundContributionEventType, line.GetFund(), k.GetAmount(), k.GetCurrency(), k.GetDonor(), k.GetReference(),
			line.GetAt().AsTime().UTC().Format("2006-01-02T15:04:05Z"), line.GetBalanceAfterUsd(), funding.LedgerStream, line.GetLine(),
			line.GetSequence(), hex.EncodeToString(line.GetHash())),
	}
	rec, _, err := s.append(ctx, r)
	if err != nil {
		return nil, err
	}
	return &demarchev1.AuditOperationResponse{Record: rec}, nil
}
