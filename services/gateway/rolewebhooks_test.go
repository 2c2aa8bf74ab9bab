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

	"github.com/demarche/demarche/pkg/webhooksig"
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
