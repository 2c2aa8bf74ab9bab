package bench

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCPUMeterReadsProcessTrees: a named process is read with its
// descendants (a shell whose child spins), per operation; the bench's own
// time is its own, and the total is their sum.
func TestCPUMeterReadsProcessTrees(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	spin := exec.Command("sh", "-c", `sh -c 'while :; do :; done' & wait`)
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The spinning child first, then the shell.
		_ = exec.Command("pkill", "-KILL", "-P", itoa(spin.Process.Pid)).Run() // best effort: the test is over
		_ = spin.Process.Kill()                                                // as above
		_ = spin.Wait()                                                        // killed: its error says so
	})
	m := newCPUMeter([]ServicePID{{Name: "spinner", PID: spin.Process.Pid}, {Name: "gone", PID: 1 << 22}})
	time.Sleep(100 * time.Millisecond) // the child has started
	stop := m.start()
	time.Sleep(600 * time.Millisecond)
	got := stop(4)
	// The spinning child has most of a core for 600 ms: well over 100 ms in
	// all, 25 ms per operation; the shell itself only waits.
	if got["spinner"] < 25 {
		t.Errorf("spinner: %.1f ms per operation, want ≥ 25 (its child spins): %v", got["spinner"], got)
	}
	if _, ok := got["gone"]; ok {
		t.Errorf("a process that does not exist has a figure: %v", got)
	}
	if b, ok := got[selfCPU]; !ok || b > got["spinner"] {
		t.Errorf("the bench's own time: %v (it sleeps; the spinner spins)", got)
	}
	if d := got[cpuTotal] - got["spinner"] - got[selfCPU]; d < -0.01 || d > 0.01 {
		t.Errorf("total %.2f is not the sum of the processes: %v", got[cpuTotal], got)
	}
	if stop(0) != nil {
		t.Error("no operation done: want no figures")
	}
	if newCPUMeter(nil).start()(10) != nil {
		t.Error("no process named: want no figures")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestServicePIDFlag: NAME=PID each, a name once, never the bench's own.
func TestServicePIDFlag(t *testing.T) {
	got, err := parseServicePIDs([]string{"postgres=42", " nats-1=7 "})
	if err != nil || len(got) != 2 || got[0] != (ServicePID{"postgres", 42}) || got[1] != (ServicePID{"nats-1", 7}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range [][]string{{"postgres"}, {"=42"}, {"postgres=x"}, {"postgres=-1"}, {"a=1", "a=2"}, {"bench=1"}} {
		if _, err := parseServicePIDs(bad); err == nil || !strings.Contains(err.Error(), "--service-pid") {
			t.Errorf("%q: want an error naming --service-pid, got %v", bad, err)
		}
	}
}

// TestCPUTable: the table of CPU per operation has a row per measured side
// that has figures, the processes that spent most first, the total last.
func TestCPUTable(t *testing.T) {
	rep := &Report{Results: []Result{
		{Scenario: "open", Variant: "200", Demarche: Measure{Count: 10, CPU: map[string]float64{"nats-1": 9, "temporal": 5, "total": 14}},
			Baseline: &Measure{Count: 10, CPU: map[string]float64{"temporal": 3, "total": 3}}},
		{Scenario: "ingest", Demarche: Measure{Count: 100}},
	}}
	var md strings.Builder
	rep.WriteMarkdown(&md)
	for _, want := range []string{
		"| scenario | variant | side | nats-1 | temporal | total |",
		"| open | 200 | Démarche | 9.00 | 5.00 | 14.0 |",
		"| open | 200 | bare | — | 3.00 | 3.00 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "| ingest |") && strings.Count(md.String(), "| ingest |") > 1 {
		t.Errorf("a result without CPU figures has a CPU row:\n%s", md.String())
	}
	if _, rows := (&Report{Results: []Result{{Scenario: "ingest"}}}).cpuTable(); rows != nil {
		t.Errorf("no CPU figures: want no table, got %v", rows)
	}
}
