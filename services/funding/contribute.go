package funding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Voluntary contributions
// (¶64 "Voluntary contributions remain essential to permit fast and flexible responses")
// are credited to a fund by a funding
// officer or fund manager: the gateway checks the role (authz.ContributeFunds)
// and stamps who from the credential; NATS lets only the gateway ask
// (natsauth: demarche.funding.contribute). The funding service writes the
// contribution line (kind CONTRIBUTION: donor, amount, currency, reference,
// who recorded it; the balance after) and has the audit service record the
// act on the global chain (event type FundContributionEventType). A
// contribution is keyed by its fund and reference: recording it again
// writes nothing and answers with the line that credited it; the same
// reference with other terms is refused.

// FundContributionEventType is the event_type of the audit record of a contribution.
const FundContributionEventType = "fund-contribution"

// ErrContributionOtherwise is matched when a reference was already credited
// to the fund with other terms.
var ErrContributionOtherwise = errs.Sentinel("contribution recorded with other terms", errs.ErrConflict)

// contributionKey is the ledger line's key (and message id) of a fund's
// contribution under a reference: the reference is the donor's own text,
// hashed to be safe as a key.
func contributionKey(fund, reference string) string {
	sum := sha256.Sum256([]byte(reference))
	return "contribution-" + fund + "-" + hex.EncodeToString(sum[:12])
}

// Contribute credits a voluntary contribution to a fund. Refused, naming the
// field: an unknown fund, a drill fund (drills never touch real money), a
// reference used before with other terms; bad amounts and currencies are
// refused by ContributeCall.Validate before this is called.
func (s *Store) Contribute(ctx context.Context, call *demarchev1.ContributeCall) (*demarchev1.ContributeResult, error) {
	if err := call.Validate(); err != nil { // natsrpc validates too; Store is usable without it
		return nil, err
	}
	fund, ok := s.funds[call.GetFund()]
	if !ok {
		return nil, fmt.Errorf("%w: fund: no fund %q (funds: %s)", errs.ErrNotFound, call.GetFund(), strings.Join(s.fundIDs(), ", "))
	}
	if fund.GetDrill() {
		return nil, fmt.Errorf("%w: fund: %s is a drill fund; contributions are real money and go to a real fund", errs.ErrRule, fund.GetId())
	}
	k := proto.Clone(call.GetContribution()).(*demarchev1.VoluntaryContribution)
	key := contributionKey(fund.GetId(), k.GetReference())
	if done, err := s.contributed(ctx, key, k); err != nil || done != nil {
		return s.audited(ctx, done, true, err)
	}
	entry, replayed, err := s.appendLine(ctx, fund.GetId(), key, func(last *demarchev1.LedgerEntry) (*demarchev1.LedgerEntry, error) {
		return &demarchev1.LedgerEntry{Fund: fund.GetId(), Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION,
			AmountUsd: k.GetAmount(), BalanceAfterUsd: last.GetBalanceAfterUsd() + k.GetAmount(), Key: key,
			At: timestamppb.New(s.now()), CrisisTotalsUsd: last.GetCrisisTotalsUsd(), Contribution: k}, nil
	})
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(entry)
	if err != nil {
		return nil, err
	}
	if _, err := s.kv.Create(ctx, key, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("funding: record contribution %s: %w", key, err)
	}
	return s.audited(ctx, entry, replayed, nil)
}

// contributed is the line that credited a contribution under key, if any; a
// contribution under the same key with other terms is refused.
func (s *Store) contributed(ctx context.Context, key string, k *demarchev1.VoluntaryContribution) (*demarchev1.LedgerEntry, error) {
	kv, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: funding: %v", errs.ErrUnavailable, err)
	}
	var e demarchev1.LedgerEntry
	if err := proto.Unmarshal(kv.Value(), &e); err != nil {
		return nil, fmt.Errorf("funding: contribution %s: %w", key, err)
	}
	was := e.GetContribution()
	if was.GetDonor() != k.GetDonor() || was.GetAmount() != k.GetAmount() || was.GetCurrency() != k.GetCurrency() {
		return nil, fmt.Errorf("%w: contribution.reference: %q was credited to %s on line %d (%s gave %d %s), not %s %d %s: a reference is one contribution",
			ErrContributionOtherwise, k.GetReference(), e.GetFund(), e.GetLine(), was.GetDonor(), was.GetAmount(), was.GetCurrency(), k.GetDonor(), k.GetAmount(), k.GetCurrency())
	}
	return &e, nil
}

// audited has the audit service record the contribution line on the global
// chain (again, for a retry: the audit service stores the same record once)
// and answers with both.
func (s *Store) audited(ctx context.Context, line *demarchev1.LedgerEntry, replayed bool, err error) (*demarchev1.ContributeResult, error) {
	if err != nil {
		return nil, err
	}
	res := &demarchev1.ContributeResult{Entry: line, Replayed: replayed}
	if s.js == nil || s.js.Conn() == nil {
		return nil, fmt.Errorf("%w: funding: no NATS connection to have the contribution audited", errs.ErrUnavailable)
	}
	var resp demarchev1.AuditOperationResponse
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := natsrpc.Call(cctx, s.js.Conn(), natsrpc.AuditFundContribution, line, &resp); err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			err = fmt.Errorf("%w: %v", errs.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("contribution %s is credited to %s (line %d) but the audit service did not record it: %w; record it again (same reference): it writes nothing new and has it recorded",
			line.GetContribution().GetReference(), line.GetFund(), line.GetLine(), err)
	}
	res.Record = resp.GetRecord()
	return res, nil
}

// ContributionLine checks that line is a fund's well-formed contribution line
// (its hash its own, kind contribution, who gave what in USD under which
// reference and who recorded it): the audit service records nothing else as
// a contribution.
func ContributionLine(line *demarchev1.LedgerEntry) error {
	b, err := proto.Marshal(line)
	if err != nil {
		return err
	}
	e, err := DecodeLine(line.GetFund(), line.GetSequence(), b)
	if err != nil {
		return fmt.Errorf("%w: %v", errs.ErrInvalid, err)
	}
	k := e.GetContribution()
	switch {
	case e.GetKind() != demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION:
		return fmt.Errorf("%w: line %d of fund %s is a %s line, not a contribution", errs.ErrInvalid, e.GetLine(), e.GetFund(), e.GetKind())
	case e.GetLine() < 2 || e.GetAmountUsd() <= 0 || k.GetAmount() != e.GetAmountUsd() || k.GetCurrency() != demarchev1.LedgerCurrency:
		return fmt.Errorf("%w: contribution line %d of fund %s: line number, amount or currency out of order", errs.ErrInvalid, e.GetLine(), e.GetFund())
	case k.GetDonor() == "" || k.GetReference() == "" || k.GetContributedBy() == "":
		return fmt.Errorf("%w: contribution line %d of fund %s: donor, reference and contributed_by are required", errs.ErrInvalid, e.GetLine(), e.GetFund())
	case e.GetKey() != contributionKey(e.GetFund(), k.GetReference()):
		return fmt.Errorf("%w: contribution line %d of fund %s: its key is not its reference's", errs.ErrInvalid, e.GetLine(), e.GetFund())
	}
	return nil
}

// ContributionEventID is the audit record's event id of a contribution line:
// the same line is recorded once.
func ContributionEventID(line *demarchev1.LedgerEntry) string {
	return FundContributionEventType + "-" + line.GetFund() + "-" + hex.EncodeToString(line.GetHash()[:min(8, len(line.GetHash()))])
}
