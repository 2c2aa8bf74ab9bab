package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestRulesApplyIsTheHeadsAndStampedWithTheCaller: POST /v1/warning/rules is
// the head of department's (an analyst is refused at the door, nothing
// reaches early warning); applied_by is the caller's credential, a body
// naming someone else is refused; early warning's refusal of a file (400,
// naming line and field) comes back as it is.
func TestRulesApplyIsTheHeadsAndStampedWithTheCaller(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	iss := issuer(t)
	api := httptest.NewServer((&Service{nc: nc, log: zap.NewNop(), authn: iss.Verifier()}).Handler())
	defer api.Close()
	var asked []*demarchev1.ApplyRulesRequest
	svc, err := micro.AddService(nc, micro.Config{Name: natsrpc.EarlyWarningService, Version: "0.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	if err := svc.AddGroup(natsrpc.EarlyWarningGroup).AddEndpoint("rules", natsrpc.Handler(func() *demarchev1.ApplyRulesRequest { return &demarchev1.ApplyRulesRequest{} },
		func(_ context.Context, req *demarchev1.ApplyRulesRequest) (*demarchev1.RulesChanged, error) {
			asked = append(asked, req)
			if strings.Contains(string(req.GetRules()), "bad") {
				return nil, &errs.Error{Sentinel: errs.ErrInvalid, Msg: "invalid rules file r.yaml:\n  line 3: scoring.window: 1h is too short"}
			}
			return &demarchev1.RulesChanged{Version: "v2", AppliedBy: req.GetAppliedBy(), Revision: 1}, nil
		})); err != nil {
		t.Fatal(err)
	}
	if err := natsrpc.Ready(nc); err != nil {
		t.Fatal(err)
	}
	post := func(token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", api.URL+"/v1/warning/rules", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, fmt.Sprint(out)
	}
	rules := `"cnVsZXM="` // base64 of "rules"
	if code, body := post(mint(t, iss, "ana", "analyst"), `{"rules": `+rules+`}`); code != http.StatusForbidden || !strings.Contains(body, "head-of-department") || len(asked) != 0 {
		t.Fatalf("an analyst applying rules: %d %s (early warning asked %d times)", code, body, len(asked))
	}
	head := mint(t, iss, "hannah", "head-of-department")
	if code, body := post(head, `{"rules": `+rules+`, "appliedBy": "someone-else"}`); code != http.StatusBadRequest || !strings.Contains(body, "applied_by") || len(asked) != 0 {
		t.Fatalf("a body naming another person: %d %s", code, body)
	}
	if code, body := post(head, `{"rules": `+rules+`, "name": "r.yaml"}`); code != http.StatusOK || !strings.Contains(body, "appliedBy:hannah") || len(asked) != 1 || asked[0].GetAppliedBy() != "hannah" {
		t.Fatalf("the head applying rules: %d %s", code, body)
	}
	if code, body := post(head, `{"rules": "YmFk"}`); code != http.StatusBadRequest || !strings.Contains(body, "line 3: scoring.window") {
		t.Fatalf("refused rules: %d %s", code, body)
	}
}
