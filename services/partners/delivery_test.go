package partners_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/partners"
)

// receiver is a partner's webhook endpoint: it verifies every delivery's
// signature, decodes the CloudEvent, and fails the first failFirst attempts of
// each event id listed in failing.
type receiver struct {
	t       *testing.T
	secret  []byte
	mu      sync.Mutex
	failing map[string]int // event id -> attempts to refuse
	always  bool           // refuse everything
	tries   []delivery     // every attempt, in order
}

type delivery struct {
	id, partner, ceType string
	status              int
	data                proto.Message
	sigErr              error
}

func newReceiver(t *testing.T, secret string) (*receiver, *httptest.Server) {
	r := &receiver{t: t, secret: []byte(secret), failing: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{id: req.Header.Get("ce-id"), partner: req.Header.Get(partners.PartnerHeader), ceType: req.Header.Get("ce-type")}
	d.sigErr = partners.Verify(r.secret, req.Header.Get(partners.SignatureHeader), body, time.Now(), 5*time.Minute)
	// The body is the event's protobuf data; the headers are its CloudEvents attributes.
	h := map[string][]string{}
	for k, v := range req.Header {
		if strings.HasPrefix(strings.ToLower(k), "ce-") || strings.EqualFold(k, "content-type") {
			h[strings.ToLower(k)] = v
		}
	}
	if ev, err := eventbus.Decode(h, body); err == nil {
		d.data = ev.Data
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case d.sigErr != nil:
		d.status = http.StatusUnauthorized
	case r.always:
		d.status = http.StatusServiceUnavailable
	case r.failing[d.id] > 0:
		r.failing[d.id]--
		d.status = http.StatusInternalServerError
	default:
		d.status = http.StatusOK
	}
	r.tries = append(r.tries, d)
	w.WriteHeader(d.status)
	fmt.Fprintln(w, http.StatusText(d.status))
}

func (r *receiver) attempts() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tries)
}

// accepted lists the event ids accepted, in order.
func (r *receiver) accepted() []string {
	var ids []string
	for _, d := range r.attempts() {
		if d.status == http.StatusOK {
			ids = append(ids, d.id)
		}
	}
	return ids
}

func webhookRegistry(t *testing.T, partnersJSON string, urls map[string]string) *partners.Registry {
	t.Helper()
	for name, u := range urls {
		partnersJSON = strings.ReplaceAll(partnersJSON, "URL_"+name, u)
	}
	return registry(t, partnersJSON, map[string]string{"SECRET_A": "secret-of-partner-a-0123", "SECRET_B": "secret-of-partner-b-0123"})
}

func TestWebhookIsSignedRetriedAfterFailuresThenAccepted(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	recvA, srvA := newReceiver(t, "secret-of-partner-a-0123")
	recvB, srvB := newReceiver(t, "secret-of-partner-b-0123")
	recvB.always = true
	reg := webhookRegistry(t, `{"partners": [
		{"name": "PA", "title": "Partner A", "webhook": {"url": "URL_A", "secret_env": "SECRET_A"}},
		{"name": "PB", "title": "Partner B", "webhook": {"url": "URL_B", "secret_env": "SECRET_B"}}]}`,
		map[string]string{"A": srvA.URL, "B": srvB.URL})

	c := newCrisis("GN-20261127-WHOOK", "GN", coup, public)
	ids := publishCrisis(t, b, c)
	recvA.failing[ids[0]] = 2 // the first event fails twice, then is accepted

	dlq, err := b.nc.SubscribeSync(eventbus.DeadLetterSubject(partners.WebhookDurablePrefix + "PB"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil { // the server has the subscription before anything is published
		t.Fatal(err)
	}
	startService(t, fastConfig(b.url, reg), nil)

	eventually(t, "both events accepted by partner A's webhook", func() bool { return len(recvA.accepted()) == 2 })
	tries := recvA.attempts()
	var statuses []int
	for _, d := range tries {
		if d.sigErr != nil {
			t.Errorf("delivery %s: signature does not verify: %v", d.id, d.sigErr)
		}
		if d.partner != "PA" {
			t.Errorf("delivery %s names partner %q, want PA", d.id, d.partner)
		}
		statuses = append(statuses, d.status)
	}
	// Three attempts of the first event (500, 500, 200), then the second event once:
	// a failing event is retried, and the events after it wait their turn.
	if want := []int{500, 500, 200, 200}; !slices.Equal(statuses, want) {
		t.Fatalf("webhook saw statuses %v, want %v", statuses, want)
	}
	if got := []string{tries[0].id, tries[1].id, tries[2].id, tries[3].id}; !slices.Equal(got, []string{ids[0], ids[0], ids[0], ids[1]}) {
		t.Fatalf("webhook saw events %v, want the first three times then the second", got)
	}
	opened, ok := tries[2].data.(*demarchev1.CrisisOpened)
	if !ok || opened.GetCrisis().GetId() != c.GetId() || tries[2].ceType != "org.demarche.crisis.crisis_opened.v1" {
		t.Fatalf("accepted delivery is not the CrisisOpened CloudEvent: type %q data %v", tries[2].ceType, tries[2].data)
	}

	// A webhook that always fails ends in the dead-letter subject, with the reason.
	m, err := dlq.NextMsg(waitTimeout)
	if err != nil {
		t.Fatalf("no dead letter for partner B's failing webhook: %v", err)
	}
	if reason := m.Header.Get(eventbus.HeaderDeadLetterReason); !strings.Contains(reason, "503") || m.Header.Get(eventbus.HeaderID) != ids[0] {
		t.Fatalf("dead letter %s with reason %q, want event %s and the 503", m.Header.Get(eventbus.HeaderID), reason, ids[0])
	}
	if n := m.Header.Get(eventbus.HeaderDeadLetterAttempts); n != "4" {
		t.Fatalf("dead-lettered after %s attempts, want MaxDeliver=4", n)
	}
	// Partner B's failures never held back partner A (A finished above while B was retrying).
}

func TestRestrictedCrisisReachesOnlyThePartnersItIsSharedWith(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	recvA, srvA := newReceiver(t, "secret-of-partner-a-0123")
	recvB, srvB := newReceiver(t, "secret-of-partner-b-0123")
	reg := webhookRegistry(t, `{"partners": [
		{"name": "PA", "title": "Partner A", "regions": ["africa"], "webhook": {"url": "URL_A", "secret_env": "SECRET_A"}},
		{"name": "PB", "title": "Partner B", "regions": ["africa"], "webhook": {"url": "URL_B", "secret_env": "SECRET_B"}},
		{"name": "PC", "title": "Partner C"}]}`,
		map[string]string{"A": srvA.URL, "B": srvB.URL})
	startService(t, fastConfig(b.url, reg), nil)

	quiet := newCrisis("ML-20261127-QUIET", "ML", coup, confidential)        // shared with no one
	restr := newCrisis("ML-20261127-RESTR", "ML", coup, restricted)          // shared with no one
	shared := newCrisis("NE-20261127-SHARE", "NE", coup, restricted, "pb")   // shared with B only (any case)
	far := newCrisis("UA-20261127-FARAW", "UA", border, restricted, "PC")    // shared with C, outside B's regions
	sentinel := newCrisis("GN-20261127-SENTL", "GN", election, public, "PA") // public: everyone in africa
	for _, c := range []*demarchev1.Crisis{quiet, restr, shared, far, sentinel} {
		publishCrisis(t, b, c)
	}
	// The fan-out keeps each crisis's order (crises go side by side in lanes
	// keyed by crisis, so two crises may interleave): wait for the last event
	// of every crisis a partner should get, then compare per crisis.
	// The sentinel arriving therefore says nothing of the other crises.
	for p, crises := range map[string][]*demarchev1.Crisis{"PA": {sentinel}, "PB": {sentinel, shared}, "PC": {sentinel, far}} {
		for _, c := range crises {
			eventually(t, c.GetId()+" reaching "+p, hasSubject(t, b, p, c, "stage_entered"))
		}
	}
	last := sentinel.GetId() + "-warning"
	eventually(t, "webhooks caught up", func() bool {
		return slices.Contains(recvA.accepted(), last) && slices.Contains(recvB.accepted(), last) &&
			slices.Contains(recvB.accepted(), shared.GetId()+"-warning")
	})
	ofCrisis := func(got []string, id string) []string {
		var out []string
		for _, e := range got {
			if strings.HasPrefix(e, id+"-") {
				out = append(out, e)
			}
		}
		return out
	}
	a, bd := recvA.accepted(), recvB.accepted()
	if len(a) != 2 || !slices.Equal(ofCrisis(a, sentinel.GetId()), []string{sentinel.GetId() + "-opened", last}) ||
		len(bd) != 4 || !slices.Equal(ofCrisis(bd, sentinel.GetId()), []string{sentinel.GetId() + "-opened", last}) ||
		!slices.Equal(ofCrisis(bd, shared.GetId()), []string{shared.GetId() + "-opened", shared.GetId() + "-warning"}) {
		t.Errorf("webhook deliveries: A %v, B %v", a, bd)
	}

	want := map[string][]string{
		"PA": {sentinel.GetId()},
		"PB": {shared.GetId(), sentinel.GetId()},
		"PC": {sentinel.GetId(), far.GetId()},
	}
	for p, crises := range want {
		slices.Sort(crises)
		subjects := partnerSubjects(t, b, p)
		if got := crisesOf(subjects); !slices.Equal(got, crises) {
			t.Errorf("partner %s received crises %v, want %v (subjects: %s)", p, got, crises, fmtSubjects(subjects))
		}
		for s, n := range subjects {
			if n != 1 {
				t.Errorf("partner %s: %d messages on %s, want 1", p, n, s)
			}
		}
	}
	for name, r := range map[string]*receiver{"PA": recvA, "PB": recvB} {
		for _, d := range r.attempts() {
			for _, c := range []*demarchev1.Crisis{quiet, restr, far} {
				if strings.HasPrefix(d.id, c.GetId()) {
					t.Errorf("webhook of %s received %s of %s crisis %s", name, d.id, c.GetConfidentiality().Slug(), c.GetId())
				}
			}
		}
	}
	if got := recvB.accepted(); !slices.Contains(got, shared.GetId()+"-opened") {
		t.Errorf("partner B's webhook did not receive the crisis shared with it: %v", got)
	}
}

func TestRegionCountryAndTypeSubscriptionsAreHonoured(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	reg := registry(t, `{"partners": [
		{"name": "EUROPE", "title": "Europe only", "regions": ["europe"]},
		{"name": "ELECTIONS", "title": "Election violence anywhere", "crisis_types": ["election-violence"]},
		{"name": "WEST", "title": "Two West African countries", "countries": ["GN", "ML"]},
		{"name": "ALL", "title": "Everything public"}]}`, nil)
	startService(t, fastConfig(b.url, reg), nil)

	gnCoup := newCrisis("GN-20261127-AAAAA", "GN", coup, public)
	keElection := newCrisis("KE-20261127-BBBBB", "KE", election, public)
	uaBorder := newCrisis("UA-20261127-CCCCC", "UA", border, public)
	// Matches every partner but WEST, so it is last on their subjects.
	frElection := newCrisis("FR-20261127-DDDDD", "FR", election, public)
	// Then one for WEST (and ALL), published last of all.
	mlElection := newCrisis("ML-20261127-EEEEE", "ML", election, public)
	for _, c := range []*demarchev1.Crisis{gnCoup, keElection, uaBorder, frElection, mlElection} {
		publishCrisis(t, b, c)
	}
	want := map[string][]string{
		"EUROPE":    {uaBorder.GetId(), frElection.GetId()},
		"ELECTIONS": {keElection.GetId(), frElection.GetId(), mlElection.GetId()},
		"WEST":      {gnCoup.GetId(), mlElection.GetId()},
		"ALL":       {gnCoup.GetId(), keElection.GetId(), uaBorder.GetId(), frElection.GetId(), mlElection.GetId()},
	}
	// Every event each partner should get, not only the last published:
	// crises run in lanes side by side, so one published earlier may be
	// delivered later (CI saw EUROPE get FR's second event before UA's).
	byID := map[string]*demarchev1.Crisis{}
	for _, c := range []*demarchev1.Crisis{gnCoup, keElection, uaBorder, frElection, mlElection} {
		byID[c.GetId()] = c
	}
	eventually(t, "every crisis reaching every partner it should", func() bool {
		for p, crises := range want {
			for _, id := range crises {
				if !hasSubject(t, b, p, byID[id], "crisis_opened")() || !hasSubject(t, b, p, byID[id], "stage_entered")() {
					return false
				}
			}
		}
		return true
	})
	for p, crises := range want {
		slices.Sort(crises)
		subjects := partnerSubjects(t, b, p)
		if got := crisesOf(subjects); !slices.Equal(got, crises) {
			t.Errorf("partner %s received crises %v, want %v", p, got, crises)
		}
		if len(subjects) != 2*len(crises) {
			t.Errorf("partner %s: subjects %s, want both events of each crisis", p, fmtSubjects(subjects))
		}
	}
	// The copy keeps the CloudEvents headers and the body, and is stored once per partner.
	subject := partners.PartnerSubject("EUROPE", eventbus.RouteOf(uaBorder), "crisis_opened")
	if subject != "demarche.partner.EUROPE.europe.UA.UA-20261127-CCCCC.crisis_opened" {
		t.Fatalf("partner subject %q", subject)
	}
	st, err := b.js.Stream(context.Background(), partners.PartnerStream("EUROPE"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := eventbus.Decode(raw.Header, raw.Data)
	if err != nil {
		t.Fatalf("partner copy is not a valid CloudEvent: %v", err)
	}
	if ev.ID != uaBorder.GetId()+"-opened" || ev.Subject != uaBorder.GetId() || ev.Source != origin.WorkflowSource {
		t.Fatalf("partner copy attributes: %+v", ev)
	}
	if id := raw.Header.Get("Nats-Msg-Id"); id != "EUROPE-"+ev.ID {
		t.Fatalf("partner copy Nats-Msg-Id %q, want per-partner id", id)
	}
	// As the AsyncAPI document says (docs/events.md, "Duplicates and order").
	if st := raw.Header.Get("Nats-Expected-Stream"); st != partners.PartnerStream("EUROPE") {
		t.Fatalf("partner copy Nats-Expected-Stream %q, want %s", st, partners.PartnerStream("EUROPE"))
	}
}

// TestEventBeforeItsOpeningWaitsWithoutStalling: early warning publishes
// WarningRaised before the crisis workflow publishes CrisisOpened. The early
// event is parked, not retried nor dead-lettered; other crises flow past it
// at once; and when the opening arrives, partners get the opening first, then
// the early event.
func TestEventBeforeItsOpeningWaitsWithoutStalling(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	reg := registry(t, `{"partners": [{"name": "ALL", "title": "Everything public"}]}`, nil)
	dlq, err := b.nc.SubscribeSync(eventbus.DeadLetterSubject(partners.Durable))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil { // the server has the subscription before anything is published
		t.Fatal(err)
	}
	cfg := fastConfig(b.url, reg)
	cfg.Delivery = partners.Retry{MaxDeliver: 3, Backoff: []time.Duration{time.Minute}} // a retry would stall this test
	startService(t, cfg, nil)

	early := newCrisis("GN-20261127-EARLY", "GN", coup, public)
	if _, err := b.pub.Publish(context.Background(), eventbus.RouteOf(early), eventbus.Event{ID: "early-warning-1", Time: time.Now(),
		Data: &demarchev1.StageEntered{CrisisId: early.GetId(), Stage: demarchev1.Stage_STAGE_WARNING, EnteredAt: timestamppb.Now()}}); err != nil {
		t.Fatal(err)
	}
	// Another crisis published next is delivered without waiting.
	next := newCrisis("GN-20261127-AFTER", "GN", coup, public)
	publishCrisis(t, b, next)
	eventually(t, "the next crisis delivered", hasSubject(t, b, "ALL", next, "stage_entered"))
	if got := crisesOf(partnerSubjects(t, b, "ALL")); fmt.Sprint(got) != fmt.Sprint([]string{next.GetId()}) {
		t.Fatalf("partner got crises %v before the early one opened, want only %s", got, next.GetId())
	}
	// The opening delivers the early event after itself.
	if _, err := b.pub.Publish(context.Background(), eventbus.RouteOf(early), eventbus.Event{ID: early.GetId() + "-opened", Time: time.Now(),
		Data: &demarchev1.CrisisOpened{Crisis: early}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the early event delivered after its opening", hasSubject(t, b, "ALL", early, "stage_entered"))
	st, err := b.js.Stream(context.Background(), partners.PartnerStream("ALL"))
	if err != nil {
		t.Fatal(err)
	}
	seq := func(token string) uint64 {
		m, err := st.GetLastMsgForSubject(context.Background(), partners.PartnerSubject("ALL", eventbus.RouteOf(early), token))
		if err != nil {
			t.Fatalf("partner copy of %s: %v", token, err)
		}
		return m.Sequence
	}
	if opened, entered := seq("crisis_opened"), seq("stage_entered"); opened > entered {
		t.Fatalf("partner stream order: crisis_opened at %d, stage_entered at %d; want the opening first", opened, entered)
	}
	if m, err := dlq.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("dead letter for an early event: %s", m.Header.Get(eventbus.HeaderDeadLetterReason))
	}
}

// A sharing change during a crisis: the newly shared partner receives the
// change and what follows; the unshared one receives the change and nothing
// after it.
func TestSharingChangeStartsAndStopsDelivery(t *testing.T) {
	t.Parallel()
	b := startNATS(t)
	reg := registry(t, `{"partners": [{"name": "PA", "title": "Partner A"}, {"name": "PB", "title": "Partner B"}]}`, nil)
	startService(t, fastConfig(b.url, reg), nil)
	c := newCrisis("NE-20261128-SHCHG", "NE", coup, restricted, "PA")
	publishCrisis(t, b, c)
	eventually(t, "PA receives the crisis shared with it", hasSubject(t, b, "PA", c, "stage_entered"))
	ctx := context.Background()
	route := eventbus.RouteOf(c)
	for _, ev := range []eventbus.Event{
		{ID: c.GetId() + "-sharing", Time: time.Now(), Data: &demarchev1.SharingChanged{CrisisId: c.GetId(), SharedWith: []string{"PB"},
			Added: []string{"PB"}, Removed: []string{"PA"}, Principal: "duty", Reason: "PB takes over"}},
		{ID: c.GetId() + "-after", Time: time.Now(), Data: &demarchev1.SeverityChanged{CrisisId: c.GetId(), From: 3, To: 4, Principal: "duty", Reason: "worse"}},
	} {
		if _, err := b.pub.Publish(ctx, route, ev); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "PB receives what follows the change", hasSubject(t, b, "PB", c, "severity_changed"))
	if !hasSubject(t, b, "PB", c, "sharing_changed")() || !hasSubject(t, b, "PB", c, "crisis_opened")() || hasSubject(t, b, "PB", c, "stage_entered")() {
		t.Errorf("PB (newly shared): %s; want the opening, the change and what follows, not the rest of what came before", fmtSubjects(partnerSubjects(t, b, "PB")))
	}
	if first := firstPartnerEvent(t, b, "PB"); first != c.GetId()+"-opened" {
		t.Errorf("PB's first event of the crisis is %s, want its opening", first)
	}
	if !hasSubject(t, b, "PA", c, "sharing_changed")() || hasSubject(t, b, "PA", c, "severity_changed")() {
		t.Errorf("PA (unshared): %s; want the change, then nothing", fmtSubjects(partnerSubjects(t, b, "PA")))
	}
}

// firstPartnerEvent is the ce-id of the first event stored for a partner.
func firstPartnerEvent(t *testing.T, b *bus, partner string) string {
	t.Helper()
	st, err := b.js.Stream(context.Background(), partners.PartnerStream(partner))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(context.Background(), 1, jetstream.WithGetMsgSubject(partners.PartnerSubjects(partner)))
	if err != nil {
		t.Fatal(err)
	}
	return m.Header.Get(eventbus.HeaderID)
}
