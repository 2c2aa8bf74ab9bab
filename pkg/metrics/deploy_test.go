package metrics_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	rulesFile  = "../../deploy/prometheus/rules.yaml"
	grafanaDir = "../../deploy/grafana"
)

// metricRef is a metric name in PromQL: ours (demarche_), the Temporal
// SDK's (temporal_) or Prometheus's own up.
var metricRef = regexp.MustCompile(`\b(demarche_[a-z0-9_]*[a-z0-9]|temporal_[a-z0-9_]*[a-z0-9]|up)\b`)

// names is every metric name referenced in PromQL text.
func names(promql string) []string {
	var out []string
	for _, m := range metricRef.FindAllString(promql, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// served says whether a referenced name is a series of a registered metric:
// the metric itself, or a histogram's _bucket, _sum or _count.
func served(reg map[string]bool, name string) bool {
	if reg[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && reg[base] {
			return true
		}
	}
	return false
}

// alerts reads rules.yaml's alerts: name → its expression's metric names
// (a plain reading of the file's "- alert:" blocks: enough for one file we
// write ourselves, without a YAML parser).
func alerts(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	blocks := strings.Split(string(b), "- alert: ")
	for _, blk := range blocks[1:] {
		name, rest, _ := strings.Cut(blk, "\n")
		expr, _, _ := strings.Cut(rest, "labels:")
		out[strings.TrimSpace(name)] = names(expr)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no alert", rulesFile)
	}
	return out
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboards reads every deploy/grafana/*.json: title → its panels' expressions.
func dashboards(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(grafanaDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard in %s: %v", grafanaDir, err)
	}
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s is not valid JSON: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: a dashboard needs a uid and a title", f)
		}
		ids := map[int]bool{}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if ids[p.ID] {
					t.Errorf("%s: panel id %d twice", f, p.ID)
				}
				ids[p.ID] = true
				if p.Type != "row" && len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
				for _, tg := range p.Targets {
					out[d.Title] = append(out[d.Title], tg.Expr)
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	return out
}

// TestRulesNameRegisteredMetrics: every metric an alert rule reads is
// registered on the registry /metrics serves (renaming a metric without its
// rule fails here, not silently in production, where the rule would just
// never fire).
func TestRulesNameRegisteredMetrics(t *testing.T) {
	reg := registered()
	for alert, ms := range alerts(t) {
		if len(ms) == 0 {
			t.Errorf("alert %s reads no metric we know", alert)
		}
		for _, m := range ms {
			if strings.HasPrefix(m, "demarche_") && !served(reg, m) {
				t.Errorf("alert %s reads %s, which pkg/metrics does not register", alert, m)
			}
		}
	}
}

// TestDashboardNamesRegisteredMetrics: the dashboards are JSON Grafana can
// import, every panel has a query, every metric a query reads is registered,
// and every alert has a panel that reads its metrics.
func TestDashboardNamesRegisteredMetrics(t *testing.T) {
	reg := registered()
	var all []string
	for title, exprs := range dashboards(t) {
		for _, e := range exprs {
			ms := names(e)
			if len(ms) == 0 {
				t.Errorf("dashboard %q: %q reads no metric we know", title, e)
			}
			for _, m := range ms {
				if strings.HasPrefix(m, "demarche_") && !served(reg, m) {
					t.Errorf("dashboard %q reads %s, which pkg/metrics does not register", title, m)
				}
				all = append(all, m)
			}
		}
	}
	for alert, ms := range alerts(t) {
		for _, m := range ms {
			if !slices.Contains(all, m) {
				t.Errorf("alert %s reads %s, which no dashboard panel shows", alert, m)
			}
		}
	}
}
