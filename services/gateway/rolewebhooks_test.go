package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/webhooksig"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

const testSecret = "0123456789abcdef-role-secret"

// receiver answers the statuses in order (then 200) and keeps what came.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []*http.Request
	bodies   [][]byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got, rc.bodies = append(rc.got, r), append(rc.bodies, b)
	code := http.StatusOK
	if len(rc.statuses) > 0 {
		code, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	w.WriteHeader(code)
}

func hook(t *testing.T, url string) *RoleWebhook {
	t.Helper()
	h := &RoleWebhook{Role: "duty-officer", URL: url, SecretEnv: "X"}
	if err := h.resolve(func(string) string { return testSecret }); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRoleWebhookSignedAndRetried(t *testing.T) {
	rc := &receiver{statuses: []int{503, 500, 429}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	d := newDeliverer()
	d.backoff = time.Millisecond
	n := Notification{Text: "New crisis NE-1: Coup (NE, coup, severity 3)", Kind: "crisis-opened", Crisis: "NE-1", Role: "duty-officer"}
	tries, err := d.deliver(context.Background(), hook(t, srv.URL), n)
	if err != nil || tries != 4 {
		t.Fatalf("delivered after %d attempts: %v (want 4: three refusals retried)", tries, err)
	}
	for i, r := range rc.got {
		if err := webhooksig.Verify([]byte(testSecret), r.Header.Get(webhooksig.Header), rc.bodies[i], time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		if err := webhooksig.Verify([]byte("another secret, not ours"), r.Header.Get(webhooksig.Header), rc.bodies[i], time.Now(), time.Minute); !errors.Is(err, webhooksig.ErrBadSignature) {
			t.Errorf("attempt %d verifies with another secret: %v", i+1, err)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(rc.bodies[3], &body); err != nil || body["text"] != n.Text || body["kind"] != "crisis-opened" {
		t.Fatalf("body %s: %v (want Teams/Slack's text, and the details)", rc.bodies[3], err)
	}
}

func TestRoleWebhookPermanentRefusalAndGivingUp(t *testing.T) {
	rc := &receiver{statuses: []int{400}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	d := newDeliverer()
	d.backoff = time.Millisecond
	if tries, err := d.deliver(context.Background(), hook(t, srv.URL), Notification{Text: "x"}); !errors.Is(err, errPermanent) || tries != 1 {
		t.Fatalf("a 400 is retried: %d attempts, %v", tries, err)
	}
	rc.statuses = []int{500, 500, 500, 500, 500, 500, 500}
	d.attempts = 3
	if tries, err := d.deliver(context.Background(), hook(t, srv.URL), Notification{Text: "x"}); err == nil || tries != 3 {
		t.Fatalf("gave up after %d attempts: %v (want 3 and an error)", tries, err)
	}
}

func TestLoadRoleWebhooks(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "hooks.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("DUTY_HOOK_SECRET", testSecret)
	hs, err := LoadRoleWebhooks(write(`{"webhooks": [{"role": "duty-officer", "url": "https://ops.example.org/hook", "secret_env": "DUTY_HOOK_SECRET", "clearance": "restricted"}]}`))
	if err != nil || len(hs) != 1 || hs[0].principal().Clearance.Slug() != "restricted" || !hs[0].principal().HasAny(hs[0].role) {
		t.Fatalf("loaded %+v: %v", hs, err)
	}
	if hs[0].principal().Partner != "" || len(hs[0].principal().Roles) != 1 {
		t.Fatalf("a webhook's principal holds more than its role: %+v", hs[0].principal())
	}
	for body, want := range map[string]string{
		`{"webhooks": [{"role": "pilot", "url": "https://x", "secret_env": "DUTY_HOOK_SECRET"}]}`:                            "role:",
		`{"webhooks": [{"role": "partner", "url": "https://x", "secret_env": "DUTY_HOOK_SECRET"}]}`:                          "partners receive",
		`{"webhooks": [{"role": "duty-officer", "url": "http://ops.example.org", "secret_env": "DUTY_HOOK_SECRET"}]}`:        "must be https",
		`{"webhooks": [{"role": "duty-officer", "url": "https://x", "secret_env": "NO_SUCH_SECRET_VAR"}]}`:                   "NO_SUCH_SECRET_VAR is empty",
		`{"webhooks": [{"role": "duty-officer", "url": "https://x", "secret_env": "DUTY_HOOK_SECRET", "clearance": "top"}]}`: "clearance:",
		`{"webhooks": [{"role": "duty-officer", "url": "https://x", "secret": "inline"}]}`:                                   "unknown field",
	} {
		if _, err := LoadRoleWebhooks(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %q", body, err, want)
		}
	}
}

// A role webhook reads each crisis as its own principal: a crisis above its
// clearance is never told, not even by id; a decision waiting for another
// role is not its; and each thing is told once.
func TestRoleWebhookReadsAsItsRole(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	states := map[string]*demarchev1.CrisisState{
		"NE-PUB": {Crisis: &demarchev1.Crisis{Id: "NE-PUB", Title: "Coup attempt", CountryCode: "NE", Severity: 3,
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC},
			PendingDecisions: []*demarchev1.PendingDecision{
				{Kind: "triage", Role: demarchev1.Role_ROLE_DUTY_OFFICER},
				{Kind: "funding-decision", Role: demarchev1.Role_ROLE_FUNDING_OFFICER},
			}},
		"NE-CONF": {Crisis: &demarchev1.Crisis{Id: "NE-CONF", Title: "Secret talks", CountryCode: "NE", Severity: 4,
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL},
			PendingDecisions: []*demarchev1.PendingDecision{{Kind: "triage", Role: demarchev1.Role_ROLE_DUTY_OFFICER}}},
	}
	s := &Service{log: zap.NewNop()}
	s.app = app.New(nil, nil, s.log, app.WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
		if st, ok := states[id]; ok {
			return st, nil
		}
		return nil, errs.ErrNotFound
	}))
	h := hook(t, srv.URL) // duty-officer, cleared public
	d := newDeliverer()
	d.backoff = time.Millisecond
	n := &roleNotifier{s: s, hooks: []RoleWebhook{*h}, d: d, log: zap.NewNop(), sent: map[string]bool{}, ctx: context.Background()}

	n.notify(&n.hooks[0], "NE-PUB", "crisis_opened")
	n.notify(&n.hooks[0], "NE-PUB", "stage_entered") // nothing new
	n.notify(&n.hooks[0], "NE-CONF", "crisis_opened")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var kinds []string
	for _, b := range rc.bodies {
		var nt Notification
		if err := json.Unmarshal(b, &nt); err != nil {
			t.Fatal(err)
		}
		if nt.Crisis != "NE-PUB" || strings.Contains(string(b), "NE-CONF") || strings.Contains(string(b), "Secret") {
			t.Errorf("told above its clearance: %s", b)
		}
		kinds = append(kinds, nt.Kind+":"+nt.Detail)
	}
	if strings.Join(kinds, ",") != "crisis-opened:,decision-waiting:triage" {
		t.Fatalf("told %v, want the new crisis and its own role's triage, once each (not the funding officer's approval)", kinds)
	}
}

// The funding officers' webhook is told of the approval waiting for them.
func TestRoleWebhookApprovalWaiting(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	st := &demarchev1.CrisisState{Crisis: &demarchev1.Crisis{Id: "NE-PUB", Title: "Coup attempt", Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC},
		PendingDecisions: []*demarchev1.PendingDecision{{Kind: "funding-decision", Role: demarchev1.Role_ROLE_FUNDING_OFFICER}}}
	s := &Service{log: zap.NewNop()}
	s.app = app.New(nil, nil, s.log, app.WithCrisisStates(func(context.Context, string) (*demarchev1.CrisisState, error) { return st, nil }))
	h := &RoleWebhook{Role: "funding-officer", URL: srv.URL, SecretEnv: "X"}
	if err := h.resolve(func(string) string { return testSecret }); err != nil {
		t.Fatal(err)
	}
	n := &roleNotifier{s: s, hooks: []RoleWebhook{*h}, d: newDeliverer(), log: zap.NewNop(), sent: map[string]bool{}, ctx: context.Background()}
	n.notify(&n.hooks[0], "NE-PUB", "decision_recorded")
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bodies) != 1 || !strings.Contains(string(rc.bodies[0]), `"kind":"approval-waiting"`) || !strings.Contains(string(rc.bodies[0]), "Approval waiting for funding-officer") {
		t.Fatalf("told %q, want one approval waiting", rc.bodies)
	}
}
