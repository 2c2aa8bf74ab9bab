package partners_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

const apiRegistry = `{"partners": [
	{"name": "AU", "title": "African Union", "regions": ["africa"]},
	{"name": "ECOWAS", "title": "Economic Community of West African States", "countries": ["GN", "ML"]},
	{"name": "OAS", "title": "Organization of American States", "regions": ["americas"]}]}`

func ack(crisisID, partner string) *demarchev1.AckRoleRequest {
	return &demarchev1.AckRoleRequest{CrisisId: crisisID, Ack: &demarchev1.PartnerRoleAck{
		Partner: partner, Role: demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD, Principal: "liaison-officer",
	}}
}

func TestAckRoleSignalsTheWorkflowOnlyForPartnersThatMaySeeTheCrisis(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	sig := &fakeSignaller{}
	cfg := fastConfig(b.url, registry(t, apiRegistry, nil))
	svc := startService(t, cfg, sig)

	pub := newCrisis("GN-20261127-PUBLC", "GN", coup, public)
	restr := newCrisis("ML-20261127-RESTR", "ML", coup, restricted, "ECOWAS")
	for _, c := range []*demarchev1.Crisis{pub, restr} {
		publishCrisis(t, b, c)
	}
	eventually(t, "crises learnt", hasSubject(t, b, "ECOWAS", restr, "stage_entered"))
	client := partners.NewClient(b.nc)
	ctx := context.Background()

	// A public crisis: any registered partner may take a role, even outside its
	// subscriptions (OAS covers the Americas); the name is matched case-insensitively.
	for _, p := range []string{"au", "OAS"} {
		resp, err := client.AckRole(ctx, ack(pub.GetId(), p))
		if err != nil {
			t.Fatalf("%s ack on a public crisis: %v", p, err)
		}
		if resp.GetAck().GetPartner() != strings.ToUpper(p) || resp.GetAck().GetAcknowledgedAt() == nil {
			t.Fatalf("response %v: want the canonical partner name and a time", resp)
		}
	}
	// A restricted crisis shared with ECOWAS.
	if _, err := client.AckRole(ctx, ack(restr.GetId(), "ECOWAS")); err != nil {
		t.Fatalf("ECOWAS ack on the crisis shared with it: %v", err)
	}
	got := sig.all()
	if len(got) != 3 {
		t.Fatalf("signaller got %d acknowledgements, want 3: %v", len(got), got)
	}
	if got[0].crisisID != pub.GetId() || got[0].ack.GetPartner() != "AU" || got[0].ack.GetRole() != demarchev1.PartnerRoleKind_PARTNER_ROLE_KIND_LEAD ||
		got[0].ack.GetPrincipal() != "liaison-officer" || got[2].crisisID != restr.GetId() || got[2].ack.GetPartner() != "ECOWAS" {
		t.Fatalf("signalled %v", got)
	}

	// Refusals: each with its sentinel and a message that says why; nothing signalled.
	for _, tc := range []struct {
		name string
		req  *demarchev1.AckRoleRequest
		is   error
		says string
	}{
		{"unknown partner", ack(pub.GetId(), "NATO"), partners.ErrUnknownPartner, `"NATO" is not in the partners registry`},
		{"not shared", ack(restr.GetId(), "AU"), partners.ErrNotShared, "crisis ML-20261127-RESTR is restricted and not shared with AU"},
		{"unknown crisis", ack("GN-20261127-NOPE0", "AU"), partners.ErrUnknownCrisis, "unknown crisis: GN-20261127-NOPE0"},
	} {
		_, err := client.AckRole(ctx, tc.req)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want %v saying %q", tc.name, err, tc.is, tc.says)
		}
	}
	// Bad input is refused by the service too, not only by the client.
	msg, err := b.nc.Request(partners.SubjectAckRole, []byte(`{"crisisId": "GN-20261127-PUBLC", "ack": {"partner": "AU", "principal": "two words"}}`), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code, desc := msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader); code != "400" || !strings.Contains(desc, "ack.role: is required") || !strings.Contains(desc, "ack.principal") {
		t.Errorf("invalid request answered %s %q", code, desc)
	}
	if n := len(sig.all()); n != 3 {
		t.Fatalf("refused requests reached the workflow: %d signals", n)
	}

	// A failing signal is reported, not swallowed.
	sig.mu.Lock()
	sig.err = errors.New("temporal unavailable")
	sig.mu.Unlock()
	if _, err := client.AckRole(ctx, ack(pub.GetId(), "AU")); err == nil || !strings.Contains(err.Error(), "temporal unavailable") {
		t.Fatalf("signal failure answered %v", err)
	}

	// What the service learnt of each crisis survives a restart.
	svc.Stop()
	sig2 := &fakeSignaller{}
	startService(t, cfg, sig2)
	if _, err := client.AckRole(ctx, ack(restr.GetId(), "ECOWAS")); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if _, err := client.AckRole(ctx, ack(restr.GetId(), "AU")); !errors.Is(err, partners.ErrNotShared) {
		t.Fatalf("after a restart, AU on the restricted crisis: %v", err)
	}
	if n := len(sig2.all()); n != 1 {
		t.Fatalf("after a restart: %d signals, want 1", n)
	}
}

func TestListAndMicroDiscovery(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	startService(t, fastConfig(b.url, registry(t, apiRegistry, nil)), nil)
	client := partners.NewClient(b.nc)
	list, err := client.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.GetName())
	}
	if !slices.Equal(names, []string{"AU", "ECOWAS", "OAS"}) || list[0].GetRegions()[0] != demarchev1.Region_REGION_AFRICA ||
		!slices.Equal(list[1].GetCountries(), []string{"GN", "ML"}) || list[2].GetSubject() != "demarche.partner.OAS.>" {
		t.Fatalf("list: %v", list)
	}

	// Standard `nats micro` discovery: PING, INFO and STATS on $SRV.
	for _, verb := range []micro.Verb{micro.PingVerb, micro.InfoVerb, micro.StatsVerb} {
		subj, err := micro.ControlSubject(verb, partners.ServiceName, "")
		if err != nil {
			t.Fatal(err)
		}
		msg, err := b.nc.Request(subj, nil, waitTimeout)
		if err != nil {
			t.Fatalf("%s: %v", subj, err)
		}
		switch verb {
		case micro.InfoVerb:
			var info micro.Info
			if err := json.Unmarshal(msg.Data, &info); err != nil {
				t.Fatal(err)
			}
			var eps []string
			for _, ep := range info.Endpoints {
				eps = append(eps, ep.Name+"="+ep.Subject)
			}
			slices.Sort(eps)
			if info.Name != "partners" || info.Type != micro.InfoResponseType ||
				!slices.Equal(eps, []string{"ack-role=demarche.partners.ack-role", "list=demarche.partners.list"}) {
				t.Fatalf("info: %s", msg.Data)
			}
		case micro.StatsVerb:
			// nats micro counts a request once its handler returns, after the
			// answer went out: the count may trail the answer a moment.
			listed := func(data []byte) (int, bool) {
				var stats micro.Stats
				if err := json.Unmarshal(data, &stats); err != nil || stats.Name != "partners" || stats.Type != micro.StatsResponseType {
					return 0, false
				}
				for _, ep := range stats.Endpoints {
					if ep.Name == "list" {
						return ep.NumRequests, true
					}
				}
				return 0, true
			}
			if _, ok := listed(msg.Data); !ok {
				t.Fatalf("stats: %s", msg.Data)
			}
			eventually(t, "stats counting the one list request", func() bool {
				m, err := b.nc.Request(subj, nil, waitTimeout)
				if err != nil {
					return false
				}
				msg = m
				n, _ := listed(m.Data)
				return n == 1
			})
		case micro.PingVerb:
			var ping micro.Ping
			if err := json.Unmarshal(msg.Data, &ping); err != nil || ping.Name != "partners" {
				t.Fatalf("ping: %s (%v)", msg.Data, err)
			}
		}
	}
}
