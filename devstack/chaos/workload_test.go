package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/demarche/demarche/workflows/crisis"
)

// state is a crisis as the gateway answers it, read leniently (field names
// in either JSON casing, enums as schema names or short slugs) so the suite
// keeps working when the API's JSON style changes.
type state map[string]any

func (s state) get(names ...string) any {
	for _, n := range names {
		if v, ok := s[n]; ok {
			return v
		}
	}
	return nil
}

func (s state) list(names ...string) []state {
	arr, _ := s.get(names...).([]any)
	out := make([]state, 0, len(arr))
	for _, v := range arr {
		switch m := v.(type) {
		case map[string]any:
			out = append(out, state(m))
		default:
			out = append(out, state{"value": m})
		}
	}
	return out
}

func (s state) str(names ...string) string {
	switch v := s.get(names...).(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// slug turns an enum value into its short form: "STAGE_SUSTAINED_FOLLOW_UP"
// and "sustained-follow-up" both become "sustained-follow-up".
func slug(v string, prefix string) string {
	v = strings.ToLower(v)
	v = strings.TrimPrefix(v, strings.ToLower(prefix)+"_")
	return strings.ReplaceAll(v, "_", "-")
}

func (s state) stage() string { return slug(s.str("currentStage", "current_stage"), "STAGE") }
func (s state) closed() bool  { return s.stage() == "closed" }

func (s state) activeStages() []string {
	var out []string
	for _, v := range s.list("activeStages", "active_stages") {
		out = append(out, slug(v.str("value", "stage"), "STAGE"))
	}
	return out
}

func (s state) pending() []string {
	var out []string
	for _, p := range s.list("pendingDecisions", "pending_decisions") {
		out = append(out, p.str("kind"))
	}
	return out
}

func (s state) decisionKinds() []string {
	var out []string
	for _, d := range s.list("decisions") {
		out = append(out, d.str("kind"))
	}
	return out
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// crisisRun is one crisis the workload opened, and what it expects of it.
type crisisRun struct {
	// name is the workload's label (newID); id is the crisis's id, known
	// once it is open: a drill's is its name in duty's drill namespace
	// (crisis.DrillID), a real crisis's is minted by the platform.
	name, id, country, crisisType string
	drill                         bool
	// start and think: a people-driven crisis opens after start and waits
	// think between its decisions, so its requests meet the faults.
	start, think time.Duration
	// keepAfter > 0: a people-driven crisis the workload leaves open after
	// that many decisions; its state must then stay as it was.
	keepAfter int
	// approved funding requests (people-driven crises), paid once each.
	approved []string

	mu   sync.Mutex
	kept state // the state when the workload left it
	err  error
}

// workload drives crises through the gateway, retrying through faults.
type workload struct {
	p       *platform
	crises  []*crisisRun
	mu      sync.Mutex
	envoys  chan [2]string // envoy and standby expert, one pair per running people-driven crisis
	retries atomic.Int64   // requests repeated after a fault (same idempotency key)
	day     string
	seq     atomic.Int64
}

func newWorkload(p *platform) *workload {
	w := &workload{p: p, envoys: make(chan [2]string, 5), day: time.Now().UTC().Format("20060102")}
	for _, pair := range [][2]string{{"env-amara-diallo", "sb-fatou-sow"}, {"env-lucia-mendez", "sb-omar-farouk"},
		{"env-kenji-sato", "sb-elena-petrova"}, {"env-ingrid-larsen", "sb-tomas-silva"}, {"env-nadia-haddad", "sb-grace-okafor"}} {
		w.envoys <- pair
	}
	return w
}

// newID is a crisis id: country, day, five letters unique in this run.
func (w *workload) newID(country string) string {
	n := w.seq.Add(1)
	const letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	suffix := []byte("CX")
	for range 3 {
		suffix = append(suffix, letters[n%int64(len(letters))])
		n /= int64(len(letters))
	}
	return fmt.Sprintf("%s-%s-%s", country, w.day, suffix)
}

func (w *workload) add(c *crisisRun) {
	w.mu.Lock()
	w.crises = append(w.crises, c)
	w.mu.Unlock()
}

func (w *workload) all() []*crisisRun {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*crisisRun(nil), w.crises...)
}

// getState reads a crisis through the gateway, waiting through faults.
func (w *workload) getState(ctx context.Context, id string) (state, error) {
	var st state
	err := eventually(ctx, 4*time.Minute, "read crisis "+id, func() (bool, string) {
		var m map[string]any
		err := w.p.api(ctx, "GET", "/v1/crises/"+url.PathEscape(id), "auditor", nil, &m)
		if err != nil {
			return false, err.Error()
		}
		st = state(m)
		return true, ""
	})
	return st, err
}

// open opens a crisis with the CLI; a retry after a fault finds it open: a
// drill by its id (named by the workload), a real crisis (whose id the
// platform mints) by its title among the country's crises.
func (w *workload) open(ctx context.Context, c *crisisRun) error {
	title := "Chaos " + c.name
	args := []string{"crisis", "open", "--title", title, "--country", c.country, "--type", c.crisisType, "--severity", "3"}
	if c.drill {
		c.id = chaosDrillID(c.name)
		args = append(args, "--id", c.name, "--drill", "--drill-delay", "1s", "--drill-time-scale", "0.000001")
		w.add(c)
	}
	tries := 0
	err := eventually(ctx, 4*time.Minute, "open crisis "+c.name, func() (bool, string) {
		tries++
		out, err := w.p.cli(ctx, "duty", args...)
		if err == nil {
			if !c.drill {
				_, rest, _ := strings.Cut(out, "opened crisis ")
				c.id, _, _ = strings.Cut(rest, " ")
			}
			return true, ""
		}
		w.retries.Add(1)
		if c.drill {
			var m map[string]any // opened before the fault cut the answer?
			gerr := w.p.api(ctx, "GET", "/v1/crises/"+url.PathEscape(c.id), "auditor", nil, &m)
			if gerr == nil {
				return true, ""
			}
			return false, fmt.Sprintf("open: %s; read back: %v", strings.TrimSpace(out), gerr)
		} else if id := w.findByTitle(ctx, c.country, title); id != "" {
			c.id = id
			return true, ""
		}
		return false, strings.TrimSpace(out)
	})
	if err == nil && !c.drill {
		w.add(c)
	}
	return err
}

// chaosDrillID is the id of the drill duty (who opens the workload's
// crises) names name.
func chaosDrillID(name string) string {
	id, err := crisis.DrillID("duty", name)
	if err != nil {
		panic(err) // newID makes valid names
	}
	return id
}

// findByTitle is the id of the country's crisis with that title ("" when
// none, or the gateway does not answer).
func (w *workload) findByTitle(ctx context.Context, country, title string) string {
	var list struct {
		Crises []struct {
			CrisisID string `json:"crisisId"`
		} `json:"crises"`
	}
	if w.p.api(ctx, "GET", "/v1/crises?country="+url.QueryEscape(country), "auditor", nil, &list) != nil {
		return ""
	}
	for _, row := range list.Crises {
		var m struct {
			Crisis struct {
				Title string `json:"title"`
			} `json:"crisis"`
		}
		if w.p.api(ctx, "GET", "/v1/crises/"+url.PathEscape(row.CrisisID), "auditor", nil, &m) == nil && m.Crisis.Title == title {
			return row.CrisisID
		}
	}
	return ""
}

// decide takes one decision with the CLI, under one idempotency key however
// often a fault makes it retry; done when the crisis has recorded it.
func (w *workload) decide(ctx context.Context, c *crisisRun, identity, kind string, flags ...string) error {
	before, err := w.getState(ctx, c.id)
	if err != nil {
		return err
	}
	had := count(before.decisionKinds(), kind)
	key := fmt.Sprintf("chaos-%s-%s-%d", c.id, kind, had+1)
	args := append([]string{"crisis", "decide", kind, c.id, "--rationale", "chaos suite", "--request-id", key}, flags...)
	first := true
	return eventually(ctx, 4*time.Minute, fmt.Sprintf("decision %s on %s recorded", kind, c.id), func() (bool, string) {
		if !first {
			w.retries.Add(1)
		}
		first = false
		out, err := w.p.cli(ctx, identity, args...)
		if err == nil {
			return true, ""
		}
		st, serr := w.getState(ctx, c.id)
		if serr == nil && count(st.decisionKinds(), kind) > had {
			return true, "" // recorded before the fault cut the answer
		}
		return false, strings.TrimSpace(out)
	})
}

// control applies an operator control with the CLI, under one key.
func (w *workload) control(ctx context.Context, c *crisisRun, done func(state) bool, args ...string) error {
	key := fmt.Sprintf("chaos-%s-%s", c.id, args[1])
	args = append(args, "--request-id", key)
	first := true
	return eventually(ctx, 4*time.Minute, fmt.Sprintf("control %s on %s applied", args[1], c.id), func() (bool, string) {
		if !first {
			w.retries.Add(1)
		}
		first = false
		out, err := w.p.cli(ctx, "duty", args...)
		if err == nil {
			return true, ""
		}
		if st, serr := w.getState(ctx, c.id); serr == nil && done(st) {
			return true, ""
		}
		return false, strings.TrimSpace(out)
	})
}

// drive takes a people-driven crisis from opening to closure (or to its
// keepAfter-th decision), as the dev identities would: the duty officer for
// the operations centre's decisions, the approver for funding (four-eyes).
func (w *workload) drive(ctx context.Context, c *crisisRun) (err error) {
	defer func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
	}()
	time.Sleep(c.start)
	if c.id == "" { // a crisis already open (the upgrade test's) is driven on
		if err := w.open(ctx, c); err != nil {
			return err
		}
	}
	var pair [2]string
	holding := false
	defer func() {
		if holding {
			w.envoys <- pair
		}
	}()
	// Each decision is taken once: a state read just after one may still
	// list it as pending.
	done := map[string]bool{}
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := w.getState(ctx, c.id)
		if err != nil {
			return err
		}
		if st.closed() {
			return nil
		}
		if c.keepAfter > 0 && len(st.decisionKinds()) >= c.keepAfter {
			if len(st.pending()) == 0 { // still moving on from the last decision
				time.Sleep(300 * time.Millisecond)
				continue
			}
			c.mu.Lock()
			c.kept = st // settled: waiting for people
			c.mu.Unlock()
			return nil
		}
		var pending []string
		for _, k := range st.pending() {
			if !done[k] {
				pending = append(pending, k)
			}
		}
		took := ""
		switch {
		case count(pending, "closure") > 0:
			took = "closure"
			err = w.decide(ctx, c, "duty", "closure", "--outcome", "averted", "--lesson", "faults absorbed")
		case count(pending, "triage") > 0:
			took = "triage"
			err = w.decide(ctx, c, "duty", "triage", "--assessment", "credible")
		case count(pending, "good-offices") > 0:
			took = "good-offices"
			err = w.decide(ctx, c, "duty", "good-offices", "--option", "quiet-diplomacy")
		case count(pending, "envoy-appointment") > 0:
			took = "envoy-appointment"
			if !holding {
				select {
				case pair = <-w.envoys:
					holding = true
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			err = w.decide(ctx, c, "duty", "envoy-appointment", "--envoy", pair[0], "--standby-team", pair[1])
		case count(pending, "standby-team-deployed") > 0:
			took = "standby-team-deployed"
			err = w.decide(ctx, c, "duty", "standby-team-deployed", "--location", "the capital")
		case count(pending, "funding-request") > 0:
			took = "funding-request"
			err = w.decide(ctx, c, "duty", "funding-request", "--funding-request", "FR-1", "--fund", "flexible-financing",
				"--amount", "10000", "--purpose", "mediation venue")
		case count(pending, "funding-decision") > 0:
			took = "funding-decision"
			if err = w.decide(ctx, c, "approver", "funding-decision", "--funding-request", "FR-1", "--approve"); err == nil {
				c.mu.Lock()
				c.approved = append(c.approved, "FR-1")
				c.mu.Unlock()
			}
		case !done["skip"] && len(st.activeStages()) == 1 && st.activeStages()[0] == "sustained-follow-up" &&
			(len(pending) == 0 || count(pending, "follow-up-check-in") == len(pending)):
			took = "skip"
			err = w.control(ctx, c, func(s state) bool { return count(s.activeStages(), "sustained-follow-up") == 0 },
				"crisis", "skip-stage", c.id, "--stage", "sustained-follow-up", "--reason", "handed over")
		case len(pending) > 0 && count(pending, "follow-up-check-in") < len(pending):
			return fmt.Errorf("crisis %s waits for %v, which the workload does not know how to take", c.id, pending)
		default:
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		if took != "" {
			done[took] = true
			time.Sleep(c.think)
		}
	}
	return errors.New("crisis " + c.id + " did not reach closure in 15 minutes of driving")
}
