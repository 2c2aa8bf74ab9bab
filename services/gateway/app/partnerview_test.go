package app

import (
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/partnerview"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// partnerMay are the fields a partner's view may carry: the whitelist of
// PartnerView, written out again so a change to it is a change here too.
var partnerMay = map[protoreflect.FullName]bool{
	"demarche.v1.CrisisState.crisis": true, "demarche.v1.CrisisState.current_stage": true,
	"demarche.v1.CrisisState.active_stages": true, "demarche.v1.CrisisState.closed_at": true,
	"demarche.v1.CrisisState.outcome": true, "demarche.v1.CrisisState.public_engagements": true,
	"demarche.v1.CrisisState.timeline": true, "demarche.v1.CrisisState.partners": true,
	"demarche.v1.Crisis.id": true, "demarche.v1.Crisis.title": true, "demarche.v1.Crisis.country_code": true,
	"demarche.v1.Crisis.region": true, "demarche.v1.Crisis.crisis_type": true, "demarche.v1.Crisis.severity": true,
	"demarche.v1.Crisis.confidentiality": true, "demarche.v1.Crisis.opened_at": true, "demarche.v1.Crisis.drill": true,
	"demarche.v1.Crisis.shared_with": true,
	"demarche.v1.StageRecord.stage":  true, "demarche.v1.StageRecord.entered_at": true, "demarche.v1.StageRecord.completed_at": true,
	"demarche.v1.StageRecord.duration": true, "demarche.v1.StageRecord.status": true, "demarche.v1.StageRecord.run": true,
	"demarche.v1.PartnerRoleAck.partner": true, "demarche.v1.PartnerRoleAck.role": true, "demarche.v1.PartnerRoleAck.acknowledged_at": true,
}

// TestPartnerViewIsAWhitelist fills every field of a CrisisState (so a field
// added to it later is filled too) and checks the partner's view carries
// only the fields partners may see: a new field is hidden until it is
// whitelisted in PartnerView. A view made by clearing a list of internal
// fields would leak the new one and fail here.
func TestPartnerViewIsAWhitelist(t *testing.T) {
	st := &demarchev1.CrisisState{}
	partnerview.Fill(st.ProtoReflect(), func(protoreflect.FieldDescriptor) string { return "PLANTED" })
	full := map[protoreflect.FullName]bool{}
	partnerview.SetFields(st.ProtoReflect(), full)
	if len(full) < 60 {
		t.Fatalf("the filled state sets only %d fields: fill does not reach them all", len(full))
	}
	view := PartnerView(st, "PLANTED") // the filled partner and sharing are "PLANTED"
	got := map[protoreflect.FullName]bool{}
	partnerview.SetFields(view.ProtoReflect(), got)
	var leaked, missing []string
	for f := range got {
		if !partnerMay[f] {
			leaked = append(leaked, string(f))
		}
	}
	for f := range partnerMay {
		if !got[f] {
			missing = append(missing, string(f))
		}
	}
	sort.Strings(leaked)
	sort.Strings(missing)
	if len(leaked) > 0 {
		t.Errorf("the partner's view carries fields not whitelisted for partners: %s", strings.Join(leaked, ", "))
	}
	if len(missing) > 0 {
		t.Errorf("the partner's view lacks whitelisted fields (the test's list and PartnerView differ): %s", strings.Join(missing, ", "))
	}
	// Another organisation's role and sharing are not this partner's to see.
	if other := PartnerView(st, "ECOWAS"); len(other.GetPartners()) != 0 || len(other.GetCrisis().GetSharedWith()) != 0 {
		t.Errorf("ECOWAS's view shows another organisation's role or sharing: %v", other)
	}
	// The view is a copy: the original state is left whole.
	view.Crisis.OpenedAt.Seconds = 1
	if st.GetCrisis().GetOpenedAt().GetSeconds() == 1 {
		t.Error("the partner's view shares its timestamps with the state it was made from")
	}
}
