package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	sizeFlag = flag.String("chaos.size", "", "fault suite size: small or full (env DEMARCHE_CHAOS_SIZE; default small)")
	seedFlag = flag.Uint64("chaos.seed", 0, "seed of the fault plan (env DEMARCHE_CHAOS_SEED; default: from the clock, printed)")
)

// size is how much the suite does.
type size struct {
	name                                           string
	drills, people, keptOpen                       int
	workerKills, stackKills, natsRestarts, outages int
	busRounds, dups, burst                         int
	outage                                         time.Duration
}

var sizes = map[string]size{
	// Inside make test: every kind of fault once, a few crises.
	"small": {name: "small", drills: 3, people: 2, keptOpen: 1, workerKills: 1, stackKills: 1, natsRestarts: 1, outages: 1,
		busRounds: 1, dups: 5, burst: 2, outage: 15 * time.Second},
	// make chaos.
	"full": {name: "full", drills: 10, people: 5, keptOpen: 2, workerKills: 3, stackKills: 3, natsRestarts: 2, outages: 1,
		busRounds: 3, dups: 20, burst: 4, outage: 2 * time.Minute},
}

var drillTypes = []string{"unconstitutional-change", "election-violence", "constitutional-crisis", "border-dispute", "intercommunal-violence", "general"}

func chosen() (size, uint64, error) {
	name := *sizeFlag
	if name == "" {
		name = os.Getenv("DEMARCHE_CHAOS_SIZE")
	}
	if name == "" {
		name = "small"
	}
	sz, ok := sizes[name]
	if !ok {
		return size{}, 0, fmt.Errorf("DEMARCHE_CHAOS_SIZE %q: allowed small, full", name)
	}
	seed := *seedFlag
	if s := os.Getenv("DEMARCHE_CHAOS_SEED"); seed == 0 && s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return size{}, 0, fmt.Errorf("DEMARCHE_CHAOS_SEED %q: not a whole number", s)
		}
		seed = n
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return sz, seed, nil
}

// TestChaos is the standing fault suite (see doc.go): a bounded run inside
// make test, the full one with make chaos.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite on child processes of the real stack; skipped with -short")
	}
	sz, seed, err := chosen()
	if err != nil {
		t.Fatal(err)
	}
	say := func(format string, args ...any) {
		line := fmt.Sprintf("chaos: "+format, args...)
		t.Log(line)
	}
	say("size %s, seed %d (repeat the fault plan with DEMARCHE_CHAOS_SEED=%d DEMARCHE_CHAOS_SIZE=%s)", sz.name, seed, seed, sz.name)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	bin := buildBinary(t)
	dir, err := os.MkdirTemp("", "demarche-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	p := newPlatform(t, bin, dir)
	t.Cleanup(func() {
		p.stopAll()
		if t.Failed() {
			t.Logf("chaos: data folder and logs kept in %s\n%s", dir, p.logTails(30))
			return
		}
		_ = os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	if err := p.startDev(ctx); err != nil {
		t.Fatalf("%v\n%s\nSTART-UP FAILED: %v", err, p.logTails(30), err)
	}
	for _, s := range p.separate {
		if err := p.startService(s); err != nil {
			t.Fatal(err)
		}
	}

	w := newWorkload(p)
	in := newInjector(p, w, rng, sz)
	in.sabotage = os.Getenv("DEMARCHE_CHAOS_SABOTAGE") == "1"
	plan := in.plan()
	say("fault plan: %s", strings.Join(plan, " → "))

	// The workload: drills and people-driven crises, all at once.
	var wg sync.WaitGroup
	countries := []string{"GN", "ML", "NE", "KE", "SN", "GH"}
	for i := range sz.drills {
		c := &crisisRun{name: w.newID(countries[i%len(countries)]), country: countries[i%len(countries)], crisisType: drillTypes[rng.IntN(len(drillTypes))], drill: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.open(ctx, c); err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
			}
		}()
	}
	for i := range sz.people {
		c := &crisisRun{name: w.newID("NE"), country: "NE", crisisType: "constitutional-crisis",
			start: time.Duration(rng.IntN(20_000)) * time.Millisecond, think: time.Duration(500+rng.IntN(3000)) * time.Millisecond}
		if i < sz.keptOpen {
			c.keepAfter = 2 // triage and good offices, then left waiting for an envoy
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.drive(ctx, c) // its error is kept on c and reported by the checks
		}()
	}
	faultErr := in.run(ctx, plan)
	wg.Wait()
	for _, l := range in.log {
		say("%s", l)
	}
	if faultErr != nil {
		t.Fatalf("a fault could not be injected or recovered from: %v\n%s\nFAULT NOT RECOVERED: %v", faultErr, p.logTails(30), faultErr)
	}

	fig := &figures{}
	v := check(ctx, p, w, in, fig)
	for _, u := range p.unexpectedExits() {
		v.fail("%s", u)
	}
	var table strings.Builder
	fig.print(&table)
	say("seed %d, size %s: figures\n%s", seed, sz.name, table.String())
	if path := os.Getenv("DEMARCHE_CHAOS_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(fmt.Sprintf("seed %d, size %s\n%s", seed, sz.name, table.String())), 0o644)
	}
	for _, l := range v.losses {
		t.Errorf("LOSS: %s", l)
	}
	for _, d := range v.doubles {
		t.Errorf("DUPLICATE / DOUBLE PAYMENT: %s", d)
	}
	for _, f := range v.failures {
		t.Errorf("%s", f)
	}
	if t.Failed() {
		t.Logf("chaos: repeat with DEMARCHE_CHAOS_SEED=%d DEMARCHE_CHAOS_SIZE=%s", seed, sz.name)
	}
}
