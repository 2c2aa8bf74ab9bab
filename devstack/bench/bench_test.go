package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/demarche/demarche/devstack/bench"
)

// TestTinyBench runs every scenario at a tiny size on the real embedded stack
// and checks the harness, not the speed: every scenario reports, counts add
// up, latencies are positive and their percentiles ordered, the JSON and the SVG are well formed. No
// figure is asserted.
func TestTinyBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the embedded stack; skipped with -short")
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "bench.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(logf), zapcore.InfoLevel))
	var progress bytes.Buffer
	sizes := bench.Tiny()
	rep, err := bench.Run(context.Background(), bench.Config{Sizes: sizes, DataDir: filepath.Join(dir, "data"), Progress: &progress}, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("scenarios failed: %v\nprogress:\n%s", rep.Failures, progress.String())
	}
	if !strings.Contains(progress.String(), "scenario capacity") {
		t.Fatalf("no progress shown:\n%s", progress.String())
	}

	// Every scenario reports, with the count it was asked for.
	want := map[string]int{"stack": 1, "decide": len(sizes.Concurrency), "open": 1, "ingest": 1, "warning-to-action": len(sizes.Rates),
		"fanout": 1, "drills": 1, "replay": 1, "capacity": len(sizes.Capacity)}
	got := map[string]int{}
	for _, r := range rep.Results {
		got[r.Scenario]++
		ops := map[string]int{"decide": sizes.Decisions, "open": sizes.Opens, "ingest": sizes.Ingest, "drills": sizes.Drills,
			"fanout": sizes.FanoutEvents * sizes.FanoutSubscribers, "capacity": 3, "stack": 1}
		if n, ok := ops[r.Scenario]; ok && r.Demarche.Count+r.Demarche.Errors != n {
			t.Errorf("%s %s: %d done + %d failed, want %d operations", r.Scenario, r.Variant, r.Demarche.Count, r.Demarche.Errors, n)
		}
		if r.Demarche.Errors > 0 || (r.Baseline != nil && r.Baseline.Errors > 0) {
			t.Errorf("%s %s: operations failed: %v", r.Scenario, r.Variant, r.Notes)
		}
		if r.Scenario != "stack" && r.Scenario != "capacity" && r.Baseline == nil {
			t.Errorf("%s %s has no baseline", r.Scenario, r.Variant)
		}
		for _, m := range []*bench.Measure{&r.Demarche, r.Baseline} {
			if m == nil || m.Latency == nil {
				continue
			}
			d := m.Latency
			if !(0 <= d.Min && d.Min <= d.P50 && d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.Max) || d.N != m.Count {
				t.Errorf("%s %s: percentiles negative, out of order or miscounted: %+v (count %d)", r.Scenario, r.Variant, d, m.Count)
			}
		}
		if r.Baseline != nil && r.RatioOf == "" && r.Scenario != "warning-to-action" {
			t.Errorf("%s %s: no ratio", r.Scenario, r.Variant)
		}
	}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("scenario %s reported %d results, want %d", s, got[s], n)
		}
	}

	out := t.TempDir()
	var table bytes.Buffer
	if err := bench.Write(rep, out, &table); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"decide", "warning-to-action", "ratio", "cores"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Results) != len(rep.Results) || back.Machine.Cores == 0 || back.Machine.GoVersion == "" {
		t.Fatalf("bench.json does not read back (%v): %d results, machine %+v", err, len(back.Results), back.Machine)
	}
	svg, err := os.Open(filepath.Join(out, "bench.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer svg.Close()
	dec := xml.NewDecoder(svg)
	rects := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bench.svg is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects < 5 {
		t.Fatalf("bench.svg draws %d boxes, want one per latency distribution", rects)
	}
	t.Logf("\n%s", table.String())
}
