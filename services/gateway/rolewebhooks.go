package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/webhooksig"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

// Role webhooks: an operations centre routes what matters to a role (a new
// crisis, a decision waiting for the role, a deadline at risk or breached,
// an approval waiting) to its own channel — a Teams or Slack incoming
// webhook, a pager bridge — as a signed POST of {"text": ...} (the body both
// take), with the details beside it for a bridge that reads them.
//
// Confidentiality: a role webhook reads each crisis as a principal of its
// own ("webhook:<role>", holding that role alone, cleared to the webhook's
// clearance, public by default) through the same application layer as a
// person's read: a crisis above its clearance is never read, nor named, and
// the read of a restricted or confidential one is recorded on the crisis's
// audit trail as that principal's. A partner never receives them (a
// webhook's role cannot be partner).

// RoleWebhook is one role's webhook, as the file names it.
type RoleWebhook struct {
	// Role is the role's slug (duty-officer, funding-officer, ...).
	Role string `json:"role"`
	// URL receives the POSTs (https, or http on loopback for tests).
	URL string `json:"url"`
	// SecretEnv names the environment variable holding the HMAC secret
	// (never the secret itself in the file).
	SecretEnv string `json:"secret_env"`
	// Clearance is the most confidential level the webhook may carry
	// (public, restricted, confidential; default public).
	Clearance string `json:"clearance,omitempty"`
	// ConsoleURL is prefixed to /console/crises/<id> for the link in the
	// text (default: none).
	ConsoleURL string `json:"console_url,omitempty"`

	role      demarchev1.Role
	clearance demarchev1.Confidentiality
	secret    []byte
}

// LoadRoleWebhooks reads a role-webhooks file: {"webhooks": [RoleWebhook...]}.
func LoadRoleWebhooks(path string) ([]RoleWebhook, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("role webhooks: %w", err)
	}
	var f struct {
		Webhooks []RoleWebhook `json:"webhooks"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("role webhooks %s: %w", path, err)
	}
	for i := range f.Webhooks {
		if err := f.Webhooks[i].resolve(os.Getenv); err != nil {
			return nil, fmt.Errorf("role webhooks %s: webhooks[%d]: %w", path, i, err)
		}
	}
	return f.Webhooks, nil
}

func (h *RoleWebhook) resolve(env func(string) string) error {
	var err error
	if h.role, err = demarchev1.ParseRole(h.Role); err != nil || h.role == demarchev1.Role_ROLE_UNSPECIFIED {
		return fmt.Errorf("role: %q is not a role (a slug such as duty-officer)", h.Role)
	}
	if h.role == demarchev1.Role_ROLE_PARTNER {
		return errors.New("role: partner: partners receive their own webhooks from the partners service, never a role webhook")
	}
	if !strings.HasPrefix(h.URL, "https://") && !strings.HasPrefix(h.URL, "http://127.0.0.1") && !strings.HasPrefix(h.URL, "http://localhost") {
		return fmt.Errorf("url: %q must be https (http only on loopback)", h.URL)
	}
	c := h.Clearance
	if c == "" {
		c = "public"
	}
	if h.clearance, err = demarchev1.ParseConfidentiality(c); err != nil || h.clearance == demarchev1.Confidentiality_CONFIDENTIALITY_UNSPECIFIED {
		return fmt.Errorf("clearance: %q is not public, restricted or confidential", h.Clearance)
	}
	if h.SecretEnv == "" {
		return errors.New("secret_env: required (the variable holding the HMAC secret)")
	}
	if h.secret = []byte(env(h.SecretEnv)); len(h.secret) < 16 {
		return fmt.Errorf("secret_env: %s is empty or shorter than 16 bytes", h.SecretEnv)
	}
	return nil
}

func (h *RoleWebhook) principal() *authn.Principal {
	return &authn.Principal{Subject: "webhook:" + h.role.Slug(), Name: h.role.Slug() + " webhook",
		Roles: []demarchev1.Role{h.role}, Clearance: h.clearance}
}

// Notification is a role webhook's body: Text is what Teams and Slack show.
type Notification struct {
	Text   string    `json:"text"`
	Kind   string    `json:"kind"` // crisis-opened, decision-waiting, approval-waiting, deadline-at-risk, deadline-breached
	Crisis string    `json:"crisis"`
	Role   string    `json:"role"`
	Detail string    `json:"detail,omitempty"` // the decision's kind, the deadline's name
	At     time.Time `json:"at"`
}

// deliverer posts signed notifications with retries.
type deliverer struct {
	client *http.Client
	// backoff is the wait before the first retry, doubling after each
	// (attempts tries in all).
	backoff  time.Duration
	attempts int
	now      func() time.Time
}

func newDeliverer() *deliverer {
	return &deliverer{client: &http.Client{Timeout: 10 * time.Second}, backoff: time.Second, attempts: 6, now: time.Now}
}

// errPermanent: the receiver refused the delivery for good (a 4xx but
// 408 and 429): retrying would not help.
var errPermanent = errors.New("refused by the receiver")

// deliver POSTs n to h, retrying network errors, 408, 429 and 5xx with
// exponential backoff. Each attempt is signed anew (its own timestamp).
func (d *deliverer) deliver(ctx context.Context, h *RoleWebhook, n Notification) (int, error) {
	body, _ := json.Marshal(n) // strings and a time: Marshal cannot fail
	wait := d.backoff
	var last error
	for attempt := 1; attempt <= d.attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return attempt - 1, fmt.Errorf("role webhook %s: %w (last: %w)", h.Role, ctx.Err(), last)
			case <-time.After(wait):
			}
			wait *= 2
		}
		last = d.post(ctx, h, body)
		if last == nil || errors.Is(last, errPermanent) {
			return attempt, last
		}
	}
	return d.attempts, fmt.Errorf("role webhook %s: gave up after %d attempts: %w", h.Role, d.attempts, last)
}

func (d *deliverer) post(ctx context.Context, h *RoleWebhook, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooksig.Header, webhooksig.Sign(h.secret, body, d.now()))
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drained for the connection's reuse; its content is not ours
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("answered %d", resp.StatusCode)
	default:
		return fmt.Errorf("%w: answered %d", errPermanent, resp.StatusCode)
	}
}

// roleNotifier turns crisis events into role webhooks' notifications.
type roleNotifier struct {
	s     *Service
	hooks []RoleWebhook
	d     *deliverer
	log   *zap.Logger
	mu    sync.Mutex
	sent  map[string]bool // what was notified (per webhook), so a state read again notifies once
	sub   *nats.Subscription
	wg    sync.WaitGroup
	ctx   context.Context
	stop  context.CancelFunc
}

// queueGroup: gateways with the same webhooks share the events (one of them
// notifies); a gateway with other webhooks has its own group.
func queueGroup(hooks []RoleWebhook) string {
	h := sha256.New()
	for _, w := range hooks {
		fmt.Fprintf(h, "%s|%s|%s\n", w.Role, w.URL, w.Clearance)
	}
	return "gateway-notify-" + hex.EncodeToString(h.Sum(nil))[:12]
}

func (s *Service) startRoleWebhooks(hooks []RoleWebhook) error {
	if len(hooks) == 0 {
		return nil
	}
	hooks = slices.Clone(hooks)
	for i := range hooks {
		if err := hooks[i].resolve(os.Getenv); err != nil {
			return fmt.Errorf("role webhooks[%d]: %w", i, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &roleNotifier{s: s, hooks: hooks, d: newDeliverer(), log: s.log.Named("rolewebhooks"), sent: map[string]bool{}, ctx: ctx, stop: cancel}
	sub, err := s.nc.QueueSubscribe(eventbus.AllEvents(), queueGroup(hooks), n.onEvent)
	if err != nil {
		cancel()
		return fmt.Errorf("role webhooks: subscribe: %w", err)
	}
	n.sub = sub
	s.notifier = n
	return nil
}

func (n *roleNotifier) close() {
	_ = n.sub.Unsubscribe() // stopping: a closed connection has dropped it already
	n.stop()
	n.wg.Wait()
}

// onEvent reads the crisis of the event as each webhook's principal and
// notifies what it has not notified yet.
func (n *roleNotifier) onEvent(m *nats.Msg) {
	// demarche.crisis.<region>.<country>.<crisis-id>.<event>
	tok := strings.Split(m.Subject, ".")
	if len(tok) < 6 {
		return
	}
	id, event := tok[4], tok[5]
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for i := range n.hooks {
			n.notify(&n.hooks[i], id, event)
		}
	}()
}

func (n *roleNotifier) once(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sent[key] {
		return false
	}
	if len(n.sent) > 100000 {
		n.sent = map[string]bool{} // bounded: at worst a notification repeats once
	}
	n.sent[key] = true
	return true
}

func (n *roleNotifier) notify(h *RoleWebhook, id, event string) {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	st, err := n.s.app.Crisis(ctx, h.principal(), app.CrisisQuery{ID: id, Via: "role webhook " + h.role.Slug()})
	cancel()
	if err != nil {
		// Above its clearance (not found for it), or unreadable now: nothing
		// goes out, not even the crisis's id.
		n.log.Debug("not notified", zap.String("role", h.Role), zap.String("crisis", id), zap.Error(err))
		return
	}
	c := st.GetCrisis()
	link := ""
	if h.ConsoleURL != "" {
		link = " " + strings.TrimRight(h.ConsoleURL, "/") + "/console/crises/" + id
	}
	drill := ""
	if c.GetDrill() {
		drill = "[drill] "
	}
	var out []Notification
	if event == "crisis_opened" && n.once(h.Role+"|opened|"+id) {
		out = append(out, Notification{Kind: "crisis-opened", Text: fmt.Sprintf("%sNew crisis %s: %s (%s, %s, severity %d)%s",
			drill, id, c.GetTitle(), c.GetCountryCode(), c.GetCrisisType().Slug(), c.GetSeverity(), link)})
	}
	for _, p := range st.GetPendingDecisions() {
		if p.GetRole() != h.role || !n.once(fmt.Sprintf("%s|pending|%s|%s|%s|%d", h.Role, id, p.GetKind(), p.GetStage(), p.GetDueAt().GetSeconds())) {
			continue
		}
		kind, what := "decision-waiting", "Decision waiting for "+h.role.Slug()
		if strings.Contains(p.GetKind(), "funding") {
			kind, what = "approval-waiting", "Approval waiting for "+h.role.Slug()
		}
		due := ""
		if p.GetDueAt() != nil {
			due = ", due " + p.GetDueAt().AsTime().UTC().Format("2 Jan 15:04 UTC")
		}
		out = append(out, Notification{Kind: kind, Detail: p.GetKind(), Text: fmt.Sprintf("%s%s: %s on %s (%s)%s%s",
			drill, what, strings.ReplaceAll(p.GetKind(), "_", " "), id, c.GetTitle(), due, link)})
	}
	for _, d := range st.GetDeadlines() {
		var kind, what string
		switch d.GetStatus() {
		case demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK:
			kind, what = "deadline-at-risk", "Deadline at risk"
		case demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED:
			kind, what = "deadline-breached", "Deadline breached"
		default:
			continue
		}
		if st.GetClosedAt() != nil || !n.once(fmt.Sprintf("%s|%s|%s|%s|%d", h.Role, kind, id, d.GetName(), d.GetDueAt().GetSeconds())) {
			continue
		}
		out = append(out, Notification{Kind: kind, Detail: d.GetName(), Text: fmt.Sprintf("%s%s: %s on %s (%s), due %s%s",
			drill, what, d.GetName(), id, c.GetTitle(), d.GetDueAt().AsTime().UTC().Format("2 Jan 15:04 UTC"), link)})
	}
	for _, nt := range out {
		nt.Crisis, nt.Role, nt.At = id, h.Role, time.Now().UTC()
		tries, err := n.d.deliver(n.ctx, h, nt)
		if err != nil {
			n.log.Warn("role webhook not delivered", zap.String("role", h.Role), zap.String("kind", nt.Kind), zap.String("crisis", id), zap.Int("attempts", tries), zap.Error(err))
			continue
		}
		n.log.Info("role webhook delivered", zap.String("role", h.Role), zap.String("kind", nt.Kind), zap.String("crisis", id), zap.Int("attempts", tries))
	}
}
