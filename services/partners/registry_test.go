package partners_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natsauth"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

func TestDefaultRegistryHasTheRegionalOrganisations(t *testing.T) {
	t.Parallel()
	r, err := partners.LoadRegistry("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"AU", "ECOWAS", "EU", "OSCE", "OAS", "ASEAN", "SADC", "IGAD", "PIF"} {
		if _, ok := r.Lookup(name); !ok {
			t.Errorf("default registry lacks %s", name)
		}
	}
	ecowas, _ := r.Lookup("ecowas")
	gn := newCrisis("GN-20261127-AAAAA", "GN", coup, public)
	ke := newCrisis("KE-20261127-AAAAA", "KE", coup, public)
	if !ecowas.Receives(gn) || ecowas.Receives(ke) {
		t.Fatalf("ECOWAS receives Guinea %v (want true), Kenya %v (want false)", ecowas.Receives(gn), ecowas.Receives(ke))
	}
}

// The report's partners are in the embedded registry with their kind:
// ¶52 "Caribbean Community (CARICOM), ECOWAS, SADC, ASEAN, OIC",
// ¶19 "International Conference on the Great Lakes Region",
// ¶31 "carried out by contact groups", ¶46 "Women's groups in particular".
// Every one of them has its NATS identity (natsauth.DefaultPartners is what
// deploy/nats/authorization.conf and `demarche dev` give a user each).
func TestDefaultRegistryHasTheReportsPartnersAndKinds(t *testing.T) {
	t.Parallel()
	r, err := partners.LoadRegistry("")
	if err != nil {
		t.Fatal(err)
	}
	regional := demarchev1.PartnerKind_PARTNER_KIND_REGIONAL_ORGANISATION
	for _, tc := range []struct {
		name     string
		kind     demarchev1.PartnerKind
		receives string // a country whose public coup it receives
		members  []string
	}{
		{"CARICOM", regional, "HT", nil},
		{"OIC", regional, "ML", nil},
		{"ICGLR", regional, "CD", nil},
		{"AU", regional, "GN", nil},
		{"ICG-GUINEA", demarchev1.PartnerKind_PARTNER_KIND_CONTACT_GROUP, "GN", []string{"AU", "ECOWAS", "EU", "OIC", "World Bank", "FR", "US"}},
		{"WANEP", demarchev1.PartnerKind_PARTNER_KIND_CIVIL_SOCIETY_NETWORK, "GN", nil},
		{"FEMWISE", demarchev1.PartnerKind_PARTNER_KIND_WOMENS_NETWORK, "GN", nil},
	} {
		p, ok := r.Lookup(tc.name)
		if !ok {
			t.Errorf("default registry lacks %s", tc.name)
			continue
		}
		info := p.Info()
		if info.GetKind() != tc.kind || p.PartnerKind() != tc.kind || !slices.Equal(info.GetMembers(), tc.members) {
			t.Errorf("%s: kind %s members %v, want %s %v", tc.name, info.GetKind().Slug(), info.GetMembers(), tc.kind.Slug(), tc.members)
		}
		if c := newCrisis(tc.receives+"-20261127-AAAAA", tc.receives, coup, public); !p.Receives(c) {
			t.Errorf("%s does not receive a public crisis in %s", tc.name, tc.receives)
		}
		if info.GetSubject() != "demarche.partner."+tc.name+".>" {
			t.Errorf("%s: subject %q", tc.name, info.GetSubject())
		}
	}
	if icglr, _ := r.Lookup("ICGLR"); icglr.Receives(newCrisis("HT-20261127-AAAAA", "HT", coup, public)) {
		t.Error("ICGLR receives a public crisis in Haiti: its countries filter is not applied")
	}
	if got, want := r.Names(), slices.Sorted(slices.Values(natsauth.DefaultPartners)); !slices.Equal(got, want) {
		t.Fatalf("registry partners %v, natsauth.DefaultPartners %v: every registered partner needs its NATS identity and stream", got, want)
	}
}

func TestRegistryFileOverridesTheDefault(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "partners.json")
	if err := os.WriteFile(path, []byte(`{"partners": [{"name": "CARICOM", "title": "Caribbean Community", "regions": ["americas"],
		"webhook": {"url": "https://caricom.example/hooks/demarche", "secret": "0123456789abcdef"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := partners.LoadRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if ps := r.Partners(); len(ps) != 1 || ps[0].Name != "CARICOM" || !ps[0].Info().GetWebhook() {
		t.Fatalf("registry from file: %v", ps)
	}
	if _, err := partners.LoadRegistry(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, partners.ErrInvalidRegistry) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRegistryErrorsNameTheEntryAndTheField(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SHORT": "short"}
	for _, tc := range []struct {
		name, json string
		says       []string
	}{
		{"syntax", `{"partners": [`, []string{"invalid partners registry test"}},
		{"unknown field", `{"partners": [{"name": "AU", "title": "x", "region": ["africa"]}]}`, []string{`unknown field "region"`}},
		{"empty", `{"partners": []}`, []string{"at least one partner"}},
		{"every problem", `{"partners": [
			{"name": "AU", "title": "African Union", "regions": ["africa", "antarctica"]},
			{"name": "AU", "title": "Again"},
			{"name": "bad name", "title": ""},
			{"name": "XX", "title": "x", "countries": ["GN", "ZZ"], "crisis_types": ["riot"]},
			{"name": "HOOK", "title": "x", "webhook": {"url": "ftp://x", "secret": "a", "secret_env": "B"}},
			{"name": "ENV", "title": "x", "webhook": {"url": "https://x.example", "secret_env": "UNSET"}},
			{"name": "WEAK", "title": "x", "webhook": {"url": "https://x.example", "secret_env": "SHORT"}},
			{"name": "NOSECRET", "title": "x", "webhook": {"url": "https://x.example"}}]}`, []string{
			`partners[0] (AU): regions[1]: "antarctica" is not a region`,
			`partners[1] (AU): name: "AU" is listed twice`,
			`partners[2] (bad name): name: "bad name" must be 2-32 upper-case letters`,
			`partners[2] (bad name): title: is required`,
			`partners[3] (XX): countries[1]: "ZZ" is not an ISO 3166-1 alpha-2 country code`,
			`partners[3] (XX): crisis_types[0]: "riot" is not a crisis type (allowed: election-violence`,
			`partners[4] (HOOK): webhook.url: "ftp://x" must be an absolute http or https URL`,
			`partners[4] (HOOK): webhook: set secret or secret_env, not both`,
			`partners[5] (ENV): webhook.secret_env: environment variable UNSET is not set`,
			`partners[6] (WEAK): webhook.secret: is 5 bytes long (allowed: at least 16)`,
			`partners[7] (NOSECRET): webhook.secret_env: is required`,
		}},
		{"kinds and members", `{"partners": [
			{"name": "AU", "title": "African Union", "kind": "club"},
			{"name": "FRIENDS", "title": "Friends of X", "kind": "group-of-friends", "members": ["NO"]},
			{"name": "ICG", "title": "Contact group", "kind": "contact-group", "members": ["ZZ", "World Bank", "World Bank", " EU"]},
			{"name": "WANEP", "title": "Network", "kind": "civil-society-network", "members": ["AU", "EU"]}]}`, []string{
			`partners[0] (AU): kind: "club" is not a partner kind (allowed: regional-organisation, group-of-friends, contact-group, civil-society-network, womens-network)`,
			`partners[1] (FRIENDS): members: a group-of-friends names at least two members`,
			`partners[2] (ICG): members[0]: "ZZ" is not an ISO 3166-1 alpha-2 country code`,
			`partners[2] (ICG): members[2]: "World Bank" is listed twice`,
			`partners[2] (ICG): members[3]: " EU" must be a non-empty name without surrounding spaces`,
			`partners[3] (WANEP): members: only a group-of-friends or contact-group has members`,
		}},
	} {
		_, err := partners.ParseRegistry([]byte(tc.json), "test", func(k string) string { return env[k] })
		if !errors.Is(err, partners.ErrInvalidRegistry) {
			t.Errorf("%s: accepted or wrong error: %v", tc.name, err)
			continue
		}
		for _, want := range tc.says {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error does not say %q:\n%v", tc.name, want, err)
			}
		}
	}
}

func TestVisibilityRules(t *testing.T) {
	t.Parallel()
	r := registry(t, `{"partners": [{"name": "AU", "title": "African Union", "regions": ["africa"]}]}`, nil)
	au, _ := r.Lookup("AU")
	for _, tc := range []struct {
		c                *demarchev1.Crisis
		maySee, receives bool
	}{
		{newCrisis("GN-20261127-AAAAA", "GN", coup, public), true, true},
		{newCrisis("UA-20261127-AAAAA", "UA", coup, public), true, false},
		{newCrisis("GN-20261127-BBBBB", "GN", coup, restricted), false, false},
		{newCrisis("GN-20261127-CCCCC", "GN", coup, confidential, "EU"), false, false},
		{newCrisis("GN-20261127-DDDDD", "GN", coup, confidential, "au"), true, true},
		{newCrisis("UA-20261127-EEEEE", "UA", coup, restricted, "AU"), true, true},
		{newCrisis("GN-20261127-FFFFF", "GN", coup, demarchev1.Confidentiality_CONFIDENTIALITY_UNSPECIFIED), false, false},
	} {
		if au.MaySee(tc.c) != tc.maySee || au.Receives(tc.c) != tc.receives {
			t.Errorf("%s (%s, shared with %v): may see %v receives %v, want %v %v", tc.c.GetId(), tc.c.GetConfidentiality().Slug(),
				tc.c.GetSharedWith(), au.MaySee(tc.c), au.Receives(tc.c), tc.maySee, tc.receives)
		}
	}
}

func TestSignatureVerifies(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef-secret")
	body := []byte("\x0a\x05hello")
	at := time.Unix(1_800_000_000, 0)
	h := partners.Sign(secret, body, at)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := partners.Verify(secret, h, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	// Rotation: a second v1 value that matches is enough.
	if err := partners.Verify(secret, h+",v1=00ff", body, at, time.Minute); err != nil {
		t.Fatalf("rotated signature refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		is     error
	}{
		{"tampered body", secret, h, []byte("\x0a\x05hellO"), at, partners.ErrBadSignature},
		{"other secret", []byte("another-secret-0123"), h, body, at, partners.ErrBadSignature},
		{"other time", secret, strings.Replace(h, "t=1800000000", "t=1800000001", 1), body, at, partners.ErrBadSignature},
		{"replayed late", secret, h, body, at.Add(6 * time.Minute), partners.ErrSignatureExpired},
		{"from the future", secret, h, body, at.Add(-6 * time.Minute), partners.ErrSignatureExpired},
		{"missing", secret, "", body, at, partners.ErrBadSignature},
		{"malformed", secret, "sha256=abc", body, at, partners.ErrBadSignature},
		{"no time", secret, strings.SplitN(h, ",", 2)[1], body, at, partners.ErrBadSignature},
	} {
		if err := partners.Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute); !errors.Is(err, tc.is) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.is)
		}
	}
}
