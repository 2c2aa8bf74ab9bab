package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/partnerview"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/workflows/crisis"
)

// liveHub turns crisis events on NATS into server-sent events, per
// principal: an event reaches a console only when its crisis is one the
// principal may see (the same list filter as the board), and it carries the
// crisis id and the event's name, never its content; the page then reads
// what changed through the same visibility rules as any read.
type liveHub struct {
	s *Service
}

func newLiveHub(s *Service) *liveHub { return &liveHub{s: s} }

// visibleSet is the crises one principal may see, refreshed from the
// listing at most once a second.
type visibleSet struct {
	mu      sync.Mutex
	ids     map[string]bool
	fetched time.Time
}

const liveRefresh = time.Second

// partnerNotice reports whether a partner liaison's console hears of an
// event: only when its organisation receives a copy of it (the partners
// service's rule, pkg/partnerview.Event), so not even the moment of a
// decision, a disbursement or a deadline reaches a partner's page.
func partnerNotice(m *nats.Msg, partner string) bool {
	ev, err := eventbus.Decode(m.Header, m.Data)
	return err == nil && partnerview.Event(ev.Data, partner) != nil
}

// liveBeat is how often an idle stream says it is still there, and checks
// that its session still holds.
const liveBeat = 20 * time.Second

func (c *console) events(w http.ResponseWriter, r *http.Request, u *user) {
	fl, ok := w.(http.Flusher)
	if !ok || c.s.nc == nil {
		http.Error(w, "live updates are not available here", http.StatusServiceUnavailable)
		return
	}
	only := r.URL.Query().Get("crisis")
	subject := eventbus.AllEvents()
	if only != "" {
		if strings.ContainsAny(only, ".*> \t") || len(only) > 100 {
			http.Error(w, "crisis: not a crisis id", http.StatusBadRequest)
			return
		}
		subject = eventbus.CrisisEvents(only)
	}
	vs := &visibleSet{}
	refresh := func() {
		vs.mu.Lock()
		defer vs.mu.Unlock()
		if time.Since(vs.fetched) < liveRefresh {
			return
		}
		rows, err := c.visibleList(r.Context(), u, crisis.Filter{}, 5000)
		if err != nil {
			c.s.log.Debug("console live: list", zap.Error(err))
			return
		}
		vs.ids = make(map[string]bool, len(rows))
		for _, row := range rows {
			vs.ids[row.CrisisID] = true
		}
		vs.fetched = time.Now()
	}
	visible := func(id string) bool {
		refresh() // rate-limited: a sharing or clearance change shows within a second
		vs.mu.Lock()
		defer vs.mu.Unlock()
		return vs.ids[id]
	}
	ch := make(chan *nats.Msg, 256)
	sub, err := c.s.nc.ChanSubscribe(subject, ch)
	if err != nil {
		http.Error(w, "live updates are not available: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer func() { _ = sub.Unsubscribe() }() // the stream is ending; a closed connection has dropped it already
	// A claim taken or released (crisisclaims.go) on this gateway or another.
	claimSubject := ClaimsSubject + ".*"
	if only != "" {
		claimSubject = ClaimsSubject + "." + only
	}
	csub, err := c.s.nc.ChanSubscribe(claimSubject, ch)
	if err != nil {
		http.Error(w, "live updates are not available: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer func() { _ = csub.Unsubscribe() }() // as above

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var wmu sync.Mutex
	closed := false // set when the handler returns: late sends are dropped
	defer func() { wmu.Lock(); closed = true; wmu.Unlock() }()
	send := func(event string, v any) bool {
		b, _ := json.Marshal(v) // the console's own view structs (strings, numbers): Marshal cannot fail
		wmu.Lock()
		defer wmu.Unlock()
		if closed {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	refresh()
	if !send("ready", map[string]string{"principal": u.Subject}) {
		return
	}
	beat := time.NewTicker(liveBeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			// The stream outlives no session: once the token no longer
			// verifies (it expired, or was revoked), the page is told and the
			// stream ends, so "Live updates: on" is never shown over a
			// session that has ended.
			if _, err := c.s.authn.Verify(r.Context(), u.token); err != nil {
				send("session-ended", map[string]string{"reason": err.Error()})
				return
			}
			wmu.Lock()
			_, err := fmt.Fprint(w, ": still here\n\n")
			fl.Flush()
			wmu.Unlock()
			if err != nil {
				return
			}
		case m := <-ch:
			if id, ok := strings.CutPrefix(m.Subject, ClaimsSubject+"."); ok {
				// a partner's view lists no pending decision: no claim to show
				if !app.PartnerOnly(u.Principal) && visible(id) && !send("crisis", map[string]string{"crisis": id, "event": "claim"}) {
					return
				}
				continue
			}
			// demarche.crisis.<region>.<country>.<crisis-id>.<event>
			tok := strings.Split(m.Subject, ".")
			if len(tok) < 6 {
				continue
			}
			ev := map[string]string{"crisis": tok[4], "event": tok[5]}
			if only != "" && tok[4] != only {
				continue
			}
			if app.PartnerOnly(u.Principal) && !partnerNotice(m, u.Partner) {
				continue
			}
			if visible(tok[4]) {
				if !send("crisis", ev) {
					return
				}
				continue
			}
			// A crisis just opened may reach visibility a moment after its
			// first event: look again once, shortly.
			go func(id string) {
				select {
				case <-r.Context().Done():
				case <-time.After(1500 * time.Millisecond):
					if visible(id) {
						send("crisis", ev)
					}
				}
			}(tok[4])
		}
	}
}
