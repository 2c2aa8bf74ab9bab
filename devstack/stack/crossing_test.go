package stack_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// crossing watches a situation (country + crisis type) on NATS for the
// crisis a threshold crossing opens. Early warning opens each crisis of a
// situation as an episode with an id of its own (reserved per situation and
// episode), so a test cannot name it in advance: the situation's
// WarningRaised says which crisis the crossing went to, and that crisis's
// CrisisOpened says it runs. Start it before publishing the signal.
type crossing struct {
	t       *testing.T
	country string
	typ     demarchev1.CrisisType
	sub     *nats.Subscription

	mu      sync.Mutex
	crisis  string               // from the situation's first WarningRaised
	opened  map[string]*nats.Msg // crisis id → its first CrisisOpened
	changed chan struct{}        // closed and replaced on every note
}

func watchCrossing(t *testing.T, nc *nats.Conn, country string, typ demarchev1.CrisisType) *crossing {
	t.Helper()
	c := &crossing{t: t, country: country, typ: typ, opened: map[string]*nats.Msg{}, changed: make(chan struct{})}
	sub, err := nc.Subscribe(eventbus.CountryEvents(country), c.note)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // subscribed on the server before the signal goes out
		t.Fatal(err)
	}
	c.sub = sub
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return c
}

func (c *crossing) note(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if token != "warning_raised" && token != "crisis_opened" {
		return
	}
	ev, err := eventbus.Decode(m.Header, m.Data)
	if err != nil {
		return // not one to match: a wait for it fails with its own message
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch d := ev.Data.(type) {
	case *demarchev1.WarningRaised:
		if d.GetCountryCode() == c.country && d.GetCrisisType() == c.typ && c.crisis == "" {
			c.crisis = d.GetCrisisId()
		}
	case *demarchev1.CrisisOpened:
		if id := d.GetCrisis().GetId(); c.opened[id] == nil {
			c.opened[id] = m
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// until waits for cond (read under the lock) or fails the test after d.
func (c *crossing) until(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		ok, changed := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			c.t.Fatalf("%s within %s", what, d)
		}
	}
}

// crisisID is the crisis the situation's crossing went to, as its
// WarningRaised names it.
func (c *crossing) crisisID(d time.Duration) string {
	c.t.Helper()
	c.until(d, "no WarningRaised for "+demarchev1.SituationKey(c.country, c.typ), func() bool { return c.crisis != "" })
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crisis
}

// openedMsg is the CrisisOpened of the crisis the crossing opened; it checks
// that the crisis is of the situation and opened by early warning.
func (c *crossing) openedMsg(d time.Duration) (string, *nats.Msg) {
	c.t.Helper()
	id := c.crisisID(d)
	c.until(d, "no CrisisOpened of "+id+", the crisis the signal's WarningRaised names", func() bool { return c.opened[id] != nil })
	c.mu.Lock()
	m := c.opened[id]
	c.mu.Unlock()
	ev, err := eventbus.Decode(m.Header, m.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	cr := ev.Data.(*demarchev1.CrisisOpened).GetCrisis()
	if cr.GetCountryCode() != c.country || cr.GetCrisisType() != c.typ || cr.GetOpenedBy() != earlywarning.ServiceName {
		c.t.Fatalf("crisis %s opened as %s %s by %q, want the situation %s opened by %s", id, cr.GetCountryCode(), cr.GetCrisisType().Slug(),
			cr.GetOpenedBy(), demarchev1.SituationKey(c.country, c.typ), earlywarning.ServiceName)
	}
	return id, m
}
