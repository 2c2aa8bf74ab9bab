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

	// Every scenario reports, with the count it was asked for; no
	// operation failed; baselines, ratios and percentiles are there and in order.
	for _, bad := range rep.CheckCounts() {
		t.Error(bad)
	}
	if d := rep.Deployment; d == nil || !d.Embedded || d.NATSVersion == "" || d.Replicas != 1 {
		t.Errorf("the report does not say it measured the embedded stack (one server, one replica): %+v", d)
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
