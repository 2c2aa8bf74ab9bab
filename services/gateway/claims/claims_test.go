package claims_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/claims"
)

// clock is a test's hand-moved time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func store(t *testing.T, ttl time.Duration) (*claims.Store, *clock) {
	t.Helper()
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	s, err := claims.Open(ctx, js, ttl)
	if err != nil {
		t.Fatal(err)
	}
	_ = s // bound once to create the bucket; the test's store runs on its own clock
	kv, err := js.KeyValue(ctx, claims.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	return claims.NewStore(kv, ttl, c.now), c
}

func state() *demarchev1.CrisisState {
	return &demarchev1.CrisisState{
		Crisis: &demarchev1.Crisis{Id: "CR-2026-0001"},
		PendingDecisions: []*demarchev1.PendingDecision{
			{Kind: "triage", Role: demarchev1.Role_ROLE_DUTY_OFFICER, Who: "duty officer"},
		},
	}
}

var (
	amara = &authn.Principal{Subject: "amara", Name: "Amara Diallo", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}}
	ben   = &authn.Principal{Subject: "ben", Name: "Ben Okafor", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}}
	fo    = &authn.Principal{Subject: "fo", Name: "Funding Officer", Roles: []demarchev1.Role{demarchev1.Role_ROLE_FUNDING_OFFICER}}
)

func TestClaimRules(t *testing.T) {
	ctx := context.Background()
	s, clk := store(t, 10*time.Minute)
	st := state()

	if _, err := s.Claim(ctx, st, "triage", fo); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("a person without the role claimed: %v", err)
	}
	if _, err := s.Claim(ctx, st, "closure", amara); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("a decision that does not wait was claimed: %v", err)
	}
	c, err := s.Claim(ctx, st, "triage", amara)
	if err != nil {
		t.Fatal(err)
	}
	if c.Holder != "amara" || c.Name != "Amara Diallo" || !c.Expires.Equal(clk.now().Add(10*time.Minute)) {
		t.Fatalf("claim %+v", c)
	}
	// The others see it.
	got, err := s.OfCrisis(ctx, st)
	if err != nil || got["triage"] == nil || got["triage"].Holder != "amara" {
		t.Fatalf("claims seen: %v %v", got, err)
	}
	// Another duty officer cannot take it over, nor release it.
	if _, err := s.Claim(ctx, st, "triage", ben); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("a live claim was taken over: %v", err)
	}
	if err := s.Release(ctx, "CR-2026-0001", "triage", ben); !errors.Is(err, errs.ErrForbidden) {
		t.Fatalf("someone else's claim was released: %v", err)
	}
	// Its holder renews it: claimed since the first time, lapsing later.
	clk.add(5 * time.Minute)
	r, err := s.Claim(ctx, st, "triage", amara)
	if err != nil || !r.At.Equal(c.At) || !r.Expires.Equal(clk.now().Add(10*time.Minute)) {
		t.Fatalf("renewal %+v %v", r, err)
	}
	// It lapses by itself: then it is nobody's, and another may claim.
	clk.add(10 * time.Minute)
	if g, err := s.Get(ctx, "CR-2026-0001", "triage"); g != nil || err != nil {
		t.Fatalf("a lapsed claim still reads: %+v %v", g, err)
	}
	if _, err := s.Claim(ctx, st, "triage", ben); err != nil {
		t.Fatalf("a lapsed claim kept the decision: %v", err)
	}
	// Its holder releases it.
	if err := s.Release(ctx, "CR-2026-0001", "triage", ben); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Get(ctx, "CR-2026-0001", "triage"); g != nil {
		t.Fatalf("released claim still reads: %+v", g)
	}
	if err := s.Release(ctx, "CR-2026-0001", "triage", ben); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("releasing nothing: %v", err)
	}
	if _, err := s.Get(ctx, "CR 1", "triage"); !errors.Is(err, errs.ErrInvalid) {
		t.Fatalf("a key with a space: %v", err)
	}
}

// Two people claiming at once: exactly one holds the claim.
func TestClaimRaceOneWinner(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t, time.Minute)
	st := state()
	var wg sync.WaitGroup
	won := make(chan string, 10)
	for i := range 10 {
		p := &authn.Principal{Subject: string(rune('a' + i)), Roles: amara.Roles}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Claim(ctx, st, "triage", p); err == nil {
				won <- p.Subject
			} else if !errors.Is(err, errs.ErrConflict) {
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	close(won)
	if n := len(won); n != 1 {
		t.Fatalf("%d claims won, want 1", n)
	}
}
