package authz

import (
	"errors"
	"testing"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

var (
	public       = demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC
	restricted   = demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED
	confidential = demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL
)

func TestCanSee(t *testing.T) {
	cleared := &authn.Principal{Subject: "duty", Roles: []role{duty}, Clearance: restricted}
	uncleared := &authn.Principal{Subject: "analyst", Roles: []role{analyst}, Clearance: public}
	ecowas := &authn.Principal{Subject: "ecowas", Roles: []role{partner}, Partner: "ECOWAS", Clearance: confidential}
	unowa := &authn.Principal{Subject: "unowa", Roles: []role{field}, Presence: "UNOWA", Clearance: restricted}
	unowaDuty := &authn.Principal{Subject: "unowa-duty", Roles: []role{field, duty}, Presence: "UNOWA", Clearance: restricted}
	cases := []struct {
		who    *authn.Principal
		conf   demarchev1.Confidentiality
		shared []string
		lead   string
		sees   bool
	}{
		// A field officer sees its presence's crises, up to its clearance.
		{unowa, public, nil, "UNOWA", true},
		{unowa, restricted, nil, "UNOWA", true},
		{unowa, confidential, nil, "UNOWA", false},
		{unowa, public, nil, "UNOCA", false},
		{unowa, public, nil, "", false},
		{unowa, public, []string{"UNOWA"}, "UNOCA", false}, // sharing is for partners, not presences
		// One who is also an operator sees by clearance, as operators do.
		{unowaDuty, public, nil, "UNOCA", true},
		{cleared, public, nil, "UNOWA", true},
		{cleared, public, nil, "", true},
		{cleared, restricted, nil, "", true},
		{cleared, confidential, nil, "", false},
		{uncleared, public, nil, "", true},
		{uncleared, restricted, []string{"ECOWAS"}, "", false},
		{ecowas, public, nil, "", false}, // a partner sees only what is shared with it
		{ecowas, confidential, []string{"AU", "ECOWAS"}, "", true},
		{ecowas, restricted, []string{"AU"}, "", false},
		{nil, public, nil, "", false},
		{cleared, demarchev1.Confidentiality_CONFIDENTIALITY_UNSPECIFIED, nil, "", false},
	}
	for i, c := range cases {
		if got := CanSee(c.who, c.conf, c.shared, c.lead); got != c.sees {
			t.Errorf("case %d: %v sees %s shared %v led by %q: %v, want %v", i, c.who, c.conf, c.shared, c.lead, got, c.sees)
		}
	}
}

func TestCheckNamesTheRolesThatMay(t *testing.T) {
	a := &authn.Principal{Subject: "analyst", Roles: []role{analyst}}
	if err := Check(SendSignals, a); err != nil {
		t.Fatalf("analyst may send signals: %v", err)
	}
	err := Check(OpenCrisis, a)
	if !errors.Is(err, errs.ErrForbidden) || err.Error() != "forbidden: crisis.open needs one of the roles duty-officer, head-of-department" {
		t.Fatalf("analyst opening a crisis: %v", err)
	}
	if err := Check(OpenCrisis, nil); !errors.Is(err, errs.ErrUnauthenticated) {
		t.Fatalf("no principal: %v", err)
	}
	f := &authn.Principal{Subject: "unowa", Roles: []role{field}, Presence: "UNOWA"}
	for _, act := range Actions() {
		// A field officer reads crises (its presence's) and decides (its
		// presence's field reports), nothing else.
		if want := act == ReadCrises || act == Decide; Allowed(act, f.Roles) != want {
			t.Errorf("a field officer may %s: %v, want %v", act, !want, want)
		}
		if len(Roles(act)) == 0 {
			t.Errorf("%s: no role may take it", act)
		}
		if Allowed(act, []role{auditor}) && act != ReadCrises && act != ReadScores && act != ReadRoster && act != ReadFunds && act != ReadPartners && act != Audit && act != ReadLessons {
			t.Errorf("the auditor may %s: auditors never write", act)
		}
	}
}
