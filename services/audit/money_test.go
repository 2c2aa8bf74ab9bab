package audit

import (
	"encoding/hex"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/anypb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/workflows/crisis"
)

// historyDeciding is a crisis history whose publishing activity published
// DecisionRecorded events for decisions.
func historyDeciding(t *testing.T, crisisID string, decisions ...*demarchev1.DecisionRecord) History {
	t.Helper()
	batch := &demarchev1.PublishEventBatch{}
	for i, d := range decisions {
		data, err := anypb.New(&demarchev1.DecisionRecorded{CrisisId: crisisID, Decision: d})
		if err != nil {
			t.Fatal(err)
		}
		batch.Events = append(batch.Events, &demarchev1.PublishEventRequest{EventId: "ev-" + string(rune('a'+i)), CrisisId: crisisID, Data: data})
	}
	p, err := dataConverter.ToPayloads(batch)
	if err != nil {
		t.Fatal(err)
	}
	return History{WorkflowID: crisis.WorkflowID(crisisID), History: &historypb.History{Events: []*historypb.HistoryEvent{{
		EventId: 5, EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
		Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
			ActivityType: &commonpb.ActivityType{Name: crisis.ActivityPublishEvents}, Input: p}},
	}}}}
}

// TestReconcileMoneyAndPeople: a disbursement or booking without a decision
// of the crisis's histories, and an approval not paid exactly once, are
// named; lines and bookings that carry out the crisis's decisions are not.
func TestReconcileMoneyAndPeople(t *testing.T) {
	const id = "GN-20261207-MONEY"
	ref := func(decision string) *demarchev1.DecisionRef {
		return &demarchev1.DecisionRef{CrisisId: id, WorkflowId: crisis.WorkflowID(id), DecisionId: decision}
	}
	approve := func(n int32, decision, request string, yes bool) *demarchev1.DecisionRecord {
		return &demarchev1.DecisionRecord{Number: n, Kind: "funding-decision", Principal: "bob", DecisionId: decision,
			Request: &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: request, Approve: yes}}}}
	}
	hs := []History{historyDeciding(t, id,
		&demarchev1.DecisionRecord{Number: 1, Kind: "envoy-appointment", Principal: "hod", DecisionId: "u-1",
			Request: &demarchev1.DecisionRequest{Decision: &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: &demarchev1.EnvoyAppointment{
				Envoy: "env-amara-diallo", StandbyTeam: []string{"sb-fatou-sow"}}}}},
		approve(2, "u-2", "FR-1", true),
		approve(3, "u-3", "FR-2", false),
		approve(4, "u-4", "FR-3", true),
	)}
	line := func(n uint64, request string, r *demarchev1.DecisionRef) *demarchev1.LedgerEntry {
		return &demarchev1.LedgerEntry{Line: n, Fund: "flexible-financing", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT,
			AmountUsd: 100, CrisisId: id, RequestId: request, Key: "k-" + request, Decision: r}
	}
	book := func(expert, role string, r *demarchev1.DecisionRef) *demarchev1.Assignment {
		return &demarchev1.Assignment{CrisisId: id, ExpertId: expert, Role: role, ReservedBy: "hod", Decision: r}
	}
	lines := []*demarchev1.LedgerEntry{
		{Line: 1, Fund: "flexible-financing", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING},
		line(2, "FR-1", ref("u-2")),
		line(3, "FR-3", ref("u-4")),
		{Line: 4, Fund: "flexible-financing", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT, CrisisId: "OTHER-1", RequestId: "FR-1"},
	}
	bookings := []*demarchev1.Assignment{book("env-amara-diallo", "envoy", ref("u-1")), book("sb-fatou-sow", "standby-1", ref("u-1"))}
	rep := &ReconcileReport{}
	rep.ReconcileMoney(id, hs, lines, bookings)
	if !rep.OK() || rep.Disbursements != 2 || rep.Approvals != 2 || rep.Bookings != 2 {
		t.Fatalf("every line and booking carries out a decision: %+v %v", rep, rep.Error())
	}

	// A forged line (no decision; a rejection's; another request's), a
	// second payment of an approval, a hand-made booking: each named.
	forged := append(lines[:3:3],
		line(5, "FR-9", nil),
		line(6, "FR-2", ref("u-3")),
		line(7, "FR-9", ref("u-2")),
		line(8, "FR-1", ref("u-2")),
	)
	hand := append(bookings[:2:2], book("env-nadia-haddad", "envoy", nil), book("sb-femi-ade", "standby-1", ref("u-1")))
	rep = &ReconcileReport{}
	rep.ReconcileMoney(id, hs, forged, hand)
	if rep.OK() || len(rep.PaymentsWithoutDecision) != 3 || len(rep.BookingsWithoutDecision) != 2 || len(rep.ApprovalsNotPaidOnce) != 1 {
		t.Fatalf("forgeries: %+v", rep)
	}
	msg := rep.Error().Error()
	for _, want := range []string{
		"disbursement without decision: line 5 of fund flexible-financing (USD 100, request FR-9, key k-FR-9) names no decision",
		`line 6 of fund flexible-financing (USD 100, request FR-2, key k-FR-2) names decision "u-3"`,
		`line 7 of fund flexible-financing (USD 100, request FR-9, key k-FR-9) names decision "u-2"`,
		"approved decision 2 (u-2, request FR-1, by bob) has 2 disbursement(s), not exactly one",
		"booking without decision: env-nadia-haddad as envoy",
		"booking without decision: sb-femi-ade as standby-1",
		"3 disbursement(s) and 2 booking(s) without a decision, 1 approval(s) not paid exactly once",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report does not say %q:\n%s", want, msg)
		}
	}
	// An approval never paid.
	rep = &ReconcileReport{}
	rep.ReconcileMoney(id, hs, lines[:2], bookings)
	if len(rep.ApprovalsNotPaidOnce) != 1 || !strings.Contains(rep.ApprovalsNotPaidOnce[0], "u-4, request FR-3, by bob) has 0 disbursement(s)") {
		t.Fatalf("unpaid approval: %v", rep.ApprovalsNotPaidOnce)
	}
}

// TestReconcileContributions: every contribution line has its record on the
// global chain, and every record its line; a forged line (no record), a
// record without a line, and a record naming another principal are named.
func TestReconcileContributions(t *testing.T) {
	line := func(fund string, n uint64, hash byte, by string) *demarchev1.LedgerEntry {
		return &demarchev1.LedgerEntry{Fund: fund, Line: n, Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_CONTRIBUTION, AmountUsd: 100,
			Hash:         []byte{hash, hash, hash, hash, hash, hash, hash, hash, hash},
			Contribution: &demarchev1.VoluntaryContribution{Donor: "NO", Amount: 100, Currency: "USD", Reference: "r", ContributedBy: by}}
	}
	record := func(l *demarchev1.LedgerEntry, principal string) *demarchev1.AuditRecord {
		return &demarchev1.AuditRecord{Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION, EventType: funding.FundContributionEventType,
			EventId: funding.ContributionEventID(l), Principal: principal, Detail: "hash " + hex.EncodeToString(l.GetHash())}
	}
	a, b, c := line("fund-a", 2, 1, "fiona"), line("fund-a", 3, 2, "fiona"), line("fund-b", 2, 3, "frank")
	disbursement := &demarchev1.LedgerEntry{Fund: "fund-a", Line: 4, Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT, AmountUsd: 50}
	for _, tc := range []struct {
		name     string
		lines    []*demarchev1.LedgerEntry
		records  []*demarchev1.AuditRecord
		skipped  []string
		problems []string
	}{
		{"all matched", []*demarchev1.LedgerEntry{a, b, c, disbursement}, []*demarchev1.AuditRecord{record(a, "fiona"), record(b, "fiona"), record(c, "frank")}, nil, nil},
		{"a line without record", []*demarchev1.LedgerEntry{a, b}, []*demarchev1.AuditRecord{record(a, "fiona")}, nil,
			[]string{"contribution without audit record: line 3 of fund fund-a"}},
		{"a record without line", []*demarchev1.LedgerEntry{a}, []*demarchev1.AuditRecord{record(a, "fiona"), record(c, "frank")}, nil,
			[]string{"has no line in the funds' ledgers"}},
		{"a record of a fund not read", []*demarchev1.LedgerEntry{a}, []*demarchev1.AuditRecord{record(a, "fiona"), record(c, "frank")}, []string{"fund-b"}, nil},
		{"another principal", []*demarchev1.LedgerEntry{a}, []*demarchev1.AuditRecord{record(a, "mallory")}, nil,
			[]string{"says otherwise than line 2 of fund fund-a: principal mallory (line: fiona)"}},
	} {
		rep := ReconcileContributions(tc.lines, tc.records, tc.skipped)
		if len(rep.Problems) != len(tc.problems) {
			t.Errorf("%s: problems %q, want %d", tc.name, rep.Problems, len(tc.problems))
			continue
		}
		for i, want := range tc.problems {
			if !strings.Contains(rep.Problems[i], want) {
				t.Errorf("%s: %q does not say %q", tc.name, rep.Problems[i], want)
			}
		}
	}
	if rep := ReconcileContributions([]*demarchev1.LedgerEntry{a, b, c}, nil, nil); rep.Contributions != 3 || rep.CreditedUSD["fund-a"] != 200 || rep.CreditedUSD["fund-b"] != 100 {
		t.Errorf("counted %d contributions, credited %v", rep.Contributions, rep.CreditedUSD)
	}
}
