package partnerview

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// eventMay are the fields a partner's copy of each event may carry: the
// allow-list of Event, written out again so a change to it is a change here
// too (and in docs/events.md, which the contract generator derives from
// Event). An event type not listed is never delivered to a partner.
var eventMay = map[protoreflect.FullName][]protoreflect.FullName{
	"demarche.v1.CrisisOpened": {"demarche.v1.CrisisOpened.crisis",
		"demarche.v1.Crisis.id", "demarche.v1.Crisis.title", "demarche.v1.Crisis.country_code", "demarche.v1.Crisis.region",
		"demarche.v1.Crisis.crisis_type", "demarche.v1.Crisis.severity", "demarche.v1.Crisis.confidentiality",
		"demarche.v1.Crisis.opened_at", "demarche.v1.Crisis.drill", "demarche.v1.Crisis.shared_with"},
	"demarche.v1.StageEntered":    {"demarche.v1.StageEntered.crisis_id", "demarche.v1.StageEntered.stage", "demarche.v1.StageEntered.entered_at"},
	"demarche.v1.StageCompleted":  {"demarche.v1.StageCompleted.crisis_id", "demarche.v1.StageCompleted.stage", "demarche.v1.StageCompleted.completed_at", "demarche.v1.StageCompleted.duration"},
	"demarche.v1.StageSkipped":    {"demarche.v1.StageSkipped.crisis_id", "demarche.v1.StageSkipped.stage"},
	"demarche.v1.StageReopened":   {"demarche.v1.StageReopened.crisis_id", "demarche.v1.StageReopened.stage"},
	"demarche.v1.SeverityChanged": {"demarche.v1.SeverityChanged.crisis_id", "demarche.v1.SeverityChanged.from", "demarche.v1.SeverityChanged.to"},
	"demarche.v1.CrisisClosed": {"demarche.v1.CrisisClosed.crisis_id", "demarche.v1.CrisisClosed.closed_at", "demarche.v1.CrisisClosed.outcome",
		// only in the copy of the organisation the crisis is handed over to
		"demarche.v1.CrisisClosed.hand_over_to", "demarche.v1.CrisisClosed.hand_over_partner"},
	"demarche.v1.SharingChanged": {"demarche.v1.SharingChanged.crisis_id", "demarche.v1.SharingChanged.shared_with",
		"demarche.v1.SharingChanged.added", "demarche.v1.SharingChanged.removed"},
	"demarche.v1.PartnerRoleAcknowledged": {"demarche.v1.PartnerRoleAcknowledged.crisis_id", "demarche.v1.PartnerRoleAcknowledged.ack",
		"demarche.v1.PartnerRoleAck.partner", "demarche.v1.PartnerRoleAck.role", "demarche.v1.PartnerRoleAck.principal", "demarche.v1.PartnerRoleAck.acknowledged_at"},
}

// partnerKeyed are the fields that name an organisation: a partner sees
// them only when they name itself.
var partnerKeyed = []protoreflect.FullName{
	"demarche.v1.Crisis.shared_with", "demarche.v1.SharingChanged.shared_with", "demarche.v1.SharingChanged.added",
	"demarche.v1.SharingChanged.removed", "demarche.v1.PartnerRoleAck.partner", "demarche.v1.PartnerRoleAck.principal",
}

// filler gives Fill its strings. With markers, each string or bytes field
// gets a value of its own ("M<n>."), remembered with its field, so a value
// found in a partner's copy names the field it came from; without, every
// string is "PLANTED".
type filler struct {
	markers bool
	n       int
	strs    map[string]protoreflect.FullName
}

// text is the value of a string or bytes field: "PLANTED", or with markers
// a value of the field's own ("M<n>."), remembered with the field.
func (fl *filler) text(f protoreflect.FieldDescriptor) string {
	if !fl.markers {
		return "PLANTED"
	}
	fl.n++
	marker := fmt.Sprintf("M%d.", fl.n)
	fl.strs[marker] = f.FullName()
	return marker
}

// TestPartnerEventsAreAnAllowList fills every field of every registered
// event message (so a field or an event type added later is filled too) and
// checks what a partner receives of it: only the allow-listed fields of the
// allow-listed types, all of them for its own organisation, and none of the
// values of the other fields anywhere in the copy's bytes. A copy made by
// clearing a list of internal fields would leak a new field and fail here;
// a new event type is not delivered until it is listed in Event and here.
func TestPartnerEventsAreAnAllowList(t *testing.T) {
	types := eventbus.Types()
	if len(types) < 19 {
		t.Fatalf("only %d event types registered", len(types))
	}
	var delivered []string
	for _, et := range types {
		t.Run(string(et.Message.Name()), func(t *testing.T) {
			// Every field "PLANTED", the partner "PLANTED": its own
			// organisation wherever a field names one.
			m := et.New()
			Fill(m.ProtoReflect(), (&filler{}).text)
			full := map[protoreflect.FullName]bool{}
			SetFields(m.ProtoReflect(), full)
			may, listed := eventMay[et.Message]
			got := Event(m, "PLANTED")
			if got == nil {
				if listed {
					t.Fatalf("%s is allow-listed for partners but Event delivers none of it", et.Message)
				}
				return
			}
			if !listed {
				t.Fatalf("%s is delivered to partners but not allow-listed here: %v", et.Message, got)
			}
			delivered = append(delivered, string(et.Message.Name()))
			if got.ProtoReflect().Descriptor().FullName() != et.Message {
				t.Fatalf("the partner's copy of %s is a %s", et.Message, got.ProtoReflect().Descriptor().FullName())
			}
			seen := map[protoreflect.FullName]bool{}
			SetFields(got.ProtoReflect(), seen)
			var leaked, missing []string
			for f := range seen {
				if !slices.Contains(may, f) {
					leaked = append(leaked, string(f))
				}
			}
			for _, f := range may {
				if !seen[f] {
					missing = append(missing, string(f))
				}
			}
			sort.Strings(leaked)
			if len(leaked) > 0 {
				t.Errorf("the partner's copy carries fields not allow-listed: %s", strings.Join(leaked, ", "))
			}
			if len(missing) > 0 {
				t.Errorf("the partner's copy lacks allow-listed fields (this test's list and Event differ): %s", strings.Join(missing, ", "))
			}
			if len(full) <= len(seen) && len(full) > 4 {
				t.Errorf("the filled event sets %d fields and the copy as many: nothing was left out", len(full))
			}

			// Every string a marker of its own, the partner another
			// organisation: no value of a field left out, nor of a field
			// naming an organisation, reaches it.
			fl := &filler{markers: true, strs: map[string]protoreflect.FullName{}}
			m = et.New()
			Fill(m.ProtoReflect(), fl.text)
			other := Event(m, "ECOWAS")
			if other == nil {
				return // about another organisation alone: not delivered
			}
			b, err := proto.Marshal(other)
			if err != nil {
				t.Fatal(err)
			}
			for marker, f := range fl.strs {
				if (!slices.Contains(may, f) || slices.Contains(partnerKeyed, f)) && strings.Contains(string(b), marker) {
					t.Errorf("%s's value %q reached another organisation's copy", f, marker)
				}
			}
			// The copy is a copy: the event delivered elsewhere is left whole.
			if !proto.Equal(Event(m, "ECOWAS"), other) {
				t.Error("projecting twice gives two different copies")
			}
		})
	}
	t.Logf("delivered to partners: %s", strings.Join(delivered, ", "))
	if len(delivered) != len(eventMay) {
		t.Errorf("%d event types delivered, %d allow-listed", len(delivered), len(eventMay))
	}
}

func now() *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
}

// A partner's copy of a genuine event passes the event's own rules, so the
// platform's decoders (and the partners service's webhook consumer, which
// decodes the partner's stream) accept it; and the left-out parts of a
// genuine decision never arrive.
func TestPartnerCopiesPassTheEventRules(t *testing.T) {
	crisis := &demarchev1.Crisis{Id: "GN-20261127-K7Q3P", Title: "Talks in Conakry", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 3, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED,
		OpenedAt: now(), FirstSignalAt: now(), OpenedBy: "duty-officer-amina", SharedWith: []string{"AU", "ECOWAS"}, PreviousCrisisId: "GN-20250101-PREV1"}
	id := crisis.GetId()
	for _, c := range []struct {
		in   proto.Message
		want string // what the partner's copy says, as text
	}{
		{&demarchev1.CrisisOpened{Crisis: crisis}, `shared_with:"ECOWAS"`},
		{&demarchev1.StageEntered{CrisisId: id, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, EnteredAt: now()}, "STAGE_GOOD_OFFICES"},
		{&demarchev1.StageSkipped{CrisisId: id, Stage: demarchev1.Stage_STAGE_FACT_FINDING, Principal: "duty-officer-amina", Reason: "SECRET the envoy is ill"}, "STAGE_FACT_FINDING"},
		{&demarchev1.StageReopened{CrisisId: id, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, Principal: "duty-officer-amina", Reason: "SECRET relapse"}, "STAGE_GOOD_OFFICES"},
		{&demarchev1.SeverityChanged{CrisisId: id, From: 3, To: 4, Principal: "duty-officer-amina", Reason: "SECRET troops"}, "to:4"},
		{&demarchev1.CrisisClosed{CrisisId: id, ClosedAt: now(), Outcome: demarchev1.Outcome_OUTCOME_AVERTED,
			Figures: &demarchev1.ClosureFigures{FundingDisbursedUsd: 250000}, Lessons: []string{"SECRET lesson"}}, "OUTCOME_AVERTED"},
		{&demarchev1.CrisisClosed{CrisisId: id, ClosedAt: now(), Outcome: demarchev1.Outcome_OUTCOME_CONTAINED,
			HandOverTo: demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION, HandOverPartner: "ecowas"}, `hand_over_partner:"ECOWAS"`},
		{&demarchev1.SharingChanged{CrisisId: id, SharedWith: []string{"AU", "ECOWAS"}, Added: []string{"ECOWAS", "AU"}, Principal: "duty-officer-amina", Reason: "SECRET the AU leads"}, `added:"ECOWAS"`},
		{&demarchev1.SharingChanged{CrisisId: id, SharedWith: []string{"AU"}, Removed: []string{"ECOWAS"}, Principal: "duty-officer-amina", Reason: "SECRET"}, `removed:"ECOWAS"`},
		{&demarchev1.PartnerRoleAcknowledged{CrisisId: id, Ack: &demarchev1.PartnerRoleAck{Partner: "ECOWAS", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD,
			Principal: "liaison-kofi", AcknowledgedAt: now(), Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}}}, `principal:"ECOWAS"`},
	} {
		if err := c.in.(interface{ Validate() error }).Validate(); err != nil {
			t.Fatalf("the test's %T is invalid: %v", c.in, err)
		}
		got := Event(c.in, "ECOWAS")
		if got == nil {
			t.Errorf("%T: not delivered", c.in)
			continue
		}
		if err := got.(interface{ Validate() error }).Validate(); err != nil {
			t.Errorf("the partner's copy of %T breaks its rules: %v", c.in, err)
		}
		text := strings.ReplaceAll(fmt.Sprint(got), "  ", " ")
		if !strings.Contains(text, c.want) {
			t.Errorf("the partner's copy of %T is %s, want it to say %s", c.in, text, c.want)
		}
		for _, secret := range []string{"SECRET", "amina", "kofi", `"AU"`, "PREV1", "250000"} {
			if strings.Contains(text, secret) {
				t.Errorf("the partner's copy of %T carries %s: %s", c.in, secret, text)
			}
		}
	}
	// Changes and roles of other organisations alone are not delivered.
	for _, m := range []proto.Message{
		&demarchev1.SharingChanged{CrisisId: id, SharedWith: []string{"AU", "ECOWAS", "EU"}, Added: []string{"EU"}, Reason: "x"},
		&demarchev1.PartnerRoleAcknowledged{CrisisId: id, Ack: &demarchev1.PartnerRoleAck{Partner: "AU", Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD, Principal: "au-desk"}},
		&demarchev1.DecisionRecorded{CrisisId: id, Decision: &demarchev1.DecisionRecord{Rationale: "SECRET"}},
		&demarchev1.FundsDisbursed{CrisisId: id, AmountUsd: 250000, Fund: "pbf-irf", DisbursementKey: "k-1"},
	} {
		if got := Event(m, "ECOWAS"); got != nil {
			t.Errorf("ECOWAS receives %T: %v", m, got)
		}
	}
}

// Fields, which the published contract is generated from, says what the
// allow-list above says.
func TestFieldsIsTheAllowList(t *testing.T) {
	for _, et := range eventbus.Types() {
		got, delivered := Fields(et.New().ProtoReflect().Type())
		may, listed := eventMay[et.Message]
		if delivered != listed {
			t.Errorf("%s: Fields says delivered=%v, the allow-list %v", et.Message, delivered, listed)
			continue
		}
		var names []protoreflect.FullName
		for f := range got {
			names = append(names, f)
		}
		slices.Sort(names)
		want := slices.Clone(may)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s: Fields %v, the allow-list %v", et.Message, names, want)
		}
	}
}

// The gateway's partner view (State) and the partner's copy of the opening
// (Event) tell a partner the same of the crisis itself.
func TestStateAndEventsAgreeOnTheCrisis(t *testing.T) {
	st := &demarchev1.CrisisState{}
	Fill(st.ProtoReflect(), (&filler{}).text)
	fromState := map[protoreflect.FullName]bool{}
	SetFields(State(st, "PLANTED").GetCrisis().ProtoReflect(), fromState)
	fromEvent := map[protoreflect.FullName]bool{}
	SetFields(Event(&demarchev1.CrisisOpened{Crisis: st.GetCrisis()}, "PLANTED").(*demarchev1.CrisisOpened).GetCrisis().ProtoReflect(), fromEvent)
	var want []protoreflect.FullName
	for _, f := range eventMay["demarche.v1.CrisisOpened"] {
		if strings.HasPrefix(string(f), "demarche.v1.Crisis.") {
			want = append(want, f)
		}
	}
	for name, got := range map[string]map[protoreflect.FullName]bool{"State": fromState, "Event": fromEvent} {
		var fields []protoreflect.FullName
		for f := range got {
			fields = append(fields, f)
		}
		slices.Sort(fields)
		slices.Sort(want)
		if !slices.Equal(fields, want) {
			t.Errorf("%s's crisis carries %v, want %v", name, fields, want)
		}
	}
}

// TestHandOverReachesItsRecipientAlone: the organisation a crisis is handed
// over to learns it in its copy of the closure; any other learns nothing of
// the hand-over.
func TestHandOverReachesItsRecipientAlone(t *testing.T) {
	closed := &demarchev1.CrisisClosed{CrisisId: "GN-20261127-K7Q3P", ClosedAt: now(), Outcome: demarchev1.Outcome_OUTCOME_CONTAINED,
		HandOverTo: demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_REGIONAL_ORGANISATION, HandOverPartner: "ECOWAS"}
	for _, tc := range []struct {
		partner string
		learns  bool
	}{{"ECOWAS", true}, {"ecowas", true}, {"AU", false}} {
		got := Event(closed, tc.partner).(*demarchev1.CrisisClosed)
		if (got.GetHandOverTo() != 0 || got.GetHandOverPartner() != "") != tc.learns {
			t.Errorf("%s's copy: %v (learns of the hand-over: want %v)", tc.partner, got, tc.learns)
		}
	}
	pbc := &demarchev1.CrisisClosed{CrisisId: "GN-20261127-K7Q3P", ClosedAt: now(), Outcome: demarchev1.Outcome_OUTCOME_CONTAINED,
		HandOverTo: demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_PEACEBUILDING_COMMISSION}
	if got := Event(pbc, "ECOWAS").(*demarchev1.CrisisClosed); got.GetHandOverTo() != 0 {
		t.Errorf("a partner learns of a hand-over to the Peacebuilding Commission: %v", got)
	}
}
