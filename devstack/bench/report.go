package bench

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Dist is a latency distribution in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// distOf summarises samples (durations); nil when there are none.
func distOf(samples []time.Duration) *Dist {
	if len(samples) == 0 {
		return nil
	}
	ms := make([]float64, len(samples))
	var sum float64
	for i, d := range samples {
		ms[i] = float64(d.Microseconds()) / 1000
		sum += ms[i]
	}
	slices.Sort(ms)
	q := func(p float64) float64 {
		// nearest rank: the smallest sample with at least p of them at or below it
		i := int(math.Ceil(p*float64(len(ms)))) - 1
		return ms[max(0, min(i, len(ms)-1))]
	}
	return &Dist{N: len(ms), Min: ms[0], P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms[len(ms)-1], Mean: sum / float64(len(ms))}
}

// Measure is one side of a scenario (Démarche or its bare baseline).
type Measure struct {
	// What was run, in words.
	What string `json:"what"`
	// Count of operations completed, Errors of those that failed.
	Count  int `json:"count"`
	Errors int `json:"errors"`
	// Seconds of wall time for Count operations; PerSecond = Count / Seconds.
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	Latency   *Dist   `json:"latency,omitempty"`
	// Extra figures (memory, disk, backlog, ...), named with their unit.
	Extra map[string]float64 `json:"extra,omitempty"`
	// CPU is each process's CPU milliseconds per operation over the run
	// (Config.ServicePIDs, the bench's own as "bench", their sum as
	// "total"): on one machine, which process a figure is bound by.
	CPU map[string]float64 `json:"cpu_ms_per_op,omitempty"`
}

func measure(what string, n, errs int, elapsed time.Duration, lat []time.Duration) Measure {
	m := Measure{What: what, Count: n, Errors: errs, Seconds: elapsed.Seconds(), Latency: distOf(lat)}
	if elapsed > 0 {
		m.PerSecond = float64(n) / elapsed.Seconds()
	}
	return m
}

// Result is one scenario run (one variant: a concurrency, a rate, a size).
type Result struct {
	Scenario string   `json:"scenario"`
	Variant  string   `json:"variant,omitempty"`
	Demarche Measure  `json:"demarche"`
	Baseline *Measure `json:"baseline,omitempty"`
	// Ratio is Démarche's figure over the baseline's (RatioOf says which:
	// "throughput" or "p50 latency"); 0 when there is no baseline.
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`
	// Target is the target in words, Met whether this run met it
	// (absent when the run is too small to say).
	Target string   `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

func (r *Result) ratioThroughput() {
	if r.Baseline != nil && r.Baseline.PerSecond > 0 {
		r.Ratio, r.RatioOf = r.Demarche.PerSecond/r.Baseline.PerSecond, "throughput"
	}
}

func (r *Result) ratioP50() {
	if r.Baseline != nil && r.Baseline.Latency != nil && r.Demarche.Latency != nil && r.Baseline.Latency.P50 > 0 {
		r.Ratio, r.RatioOf = r.Demarche.Latency.P50/r.Baseline.Latency.P50, "p50 latency"
	}
}

func (r *Result) judge(target string, met bool) {
	r.Target = target
	r.Met = &met
}

// Machine describes where the figures come from.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu,omitempty"`
	MemoryMB  int    `json:"memory_mb"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit,omitempty"`
	Dirty     bool   `json:"dirty,omitempty"`
	LoadAvg   string `json:"load_average_at_start,omitempty"`
}

func describeMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if kb, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				v, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB"))) // an unreadable figure stays 0 (unknown)
				m.MemoryMB = v / 1024
			}
		}
		_ = f.Close() // read-only file: Close cannot lose data
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	// The commit the binary was built from (go build records it), else the
	// checkout's it runs in (go run, go test).
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			switch st.Key {
			case "vcs.revision":
				m.Commit = st.Value
			case "vcs.modified":
				m.Dirty = st.Value == "true"
			}
		}
	}
	if m.Commit != "" {
		return m
	}
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			m.Dirty = len(strings.TrimSpace(string(st))) > 0
		}
	}
	return m
}

// Deployment says which servers were measured: the embedded stack in the
// bench's own process, or a deployment the bench reached over the network
// (Machine is then where the bench ran, not where the servers did).
type Deployment struct {
	Embedded        bool   `json:"embedded"`
	NATSURL         string `json:"nats_url,omitempty"`
	TemporalAddress string `json:"temporal_address,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	// NATSServers the connection knows (a cluster's nodes), the version of
	// the one it reached, and the replicas of the signals stream (the bare
	// stream's too).
	NATSServers int    `json:"nats_servers,omitempty"`
	NATSVersion string `json:"nats_version,omitempty"`
	Replicas    int    `json:"replicas,omitempty"`
}

func (d *Deployment) String() string {
	switch {
	case d == nil:
		return "servers unknown"
	case d.Embedded:
		return fmt.Sprintf("the embedded stack (NATS %s, Temporal on SQLite, every service in this process)", d.NATSVersion)
	}
	return fmt.Sprintf("a deployment: NATS %s (%d servers known, nats-server %s, streams at %d replicas), Temporal %s namespace %s",
		d.NATSURL, d.NATSServers, d.NATSVersion, d.Replicas, d.TemporalAddress, d.Namespace)
}

// Report is everything one `demarche bench` run measured.
type Report struct {
	Command    string      `json:"command"`
	Started    time.Time   `json:"started"`
	Seconds    float64     `json:"seconds"`
	Machine    Machine     `json:"machine"`
	Deployment *Deployment `json:"deployment,omitempty"`
	Sizes      Sizes       `json:"sizes"`
	// Only are the scenarios asked for (none: all).
	Only     []string `json:"only,omitempty"`
	Results  []Result `json:"results"`
	Failures []string `json:"failures,omitempty"`
}

// CheckCounts checks the harness, not the speed: every scenario asked for
// reports, each with the number of operations its sizes ask for (done +
// failed), none failed, each has its baseline and ratio, and latencies are
// ordered percentiles of as many samples as operations done. It returns what
// does not add up (nothing: all well). No figure is judged.
func (r *Report) CheckCounts() []string {
	var bad []string
	sz := r.Sizes
	wanted := func(s string) bool { return len(r.Only) == 0 || slices.Contains(r.Only, s) }
	want := map[string]int{"decide": len(sz.Concurrency), "open": 1, "ingest": 2, "warning-to-action": len(sz.Rates) + 1,
		"fanout": 1, "drills": 1, "replay": 1, "capacity": len(sz.Capacity)}
	if r.Deployment == nil || r.Deployment.Embedded {
		want["stack"] = 1  // start-up and idle memory are the embedded stack's alone
		want["import"] = 1 // the ingest endpoint answers the gateway alone
	}
	ops := map[string]int{"decide": sz.Decisions, "open": sz.Opens, "ingest": sz.Ingest, "import": sz.Import, "drills": sz.Drills,
		"fanout": sz.FanoutEvents * sz.FanoutSubscribers, "capacity": 3, "stack": 1}
	got := map[string]int{}
	for _, res := range r.Results {
		got[res.Scenario]++
		if n, ok := ops[res.Scenario]; ok && res.Demarche.Count+res.Demarche.Errors != n {
			bad = append(bad, fmt.Sprintf("%s %s: %d done + %d failed, want %d operations", res.Scenario, res.Variant, res.Demarche.Count, res.Demarche.Errors, n))
		}
		if res.Demarche.Errors > 0 || (res.Baseline != nil && res.Baseline.Errors > 0) {
			bad = append(bad, fmt.Sprintf("%s %s: operations failed: %v", res.Scenario, res.Variant, res.Notes))
		}
		if res.Scenario != "stack" && res.Scenario != "capacity" && res.Baseline == nil {
			bad = append(bad, fmt.Sprintf("%s %s has no baseline", res.Scenario, res.Variant))
		}
		for _, m := range []*Measure{&res.Demarche, res.Baseline} {
			if m == nil || m.Latency == nil {
				continue
			}
			d := m.Latency
			if !(0 <= d.Min && d.Min <= d.P50 && d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.Max) || d.N != m.Count {
				bad = append(bad, fmt.Sprintf("%s %s: percentiles negative, out of order or miscounted: %+v (count %d)", res.Scenario, res.Variant, d, m.Count))
			}
		}
		// The gateway's list (embedded only) holds what visibility holds, up
		// to the route's limit of 5,000 rows.
		if x := res.Demarche.Extra; res.Scenario == "capacity" && x != nil {
			if all, ok := x["api_all_rows"]; ok && all != min(x["listed_rows"], 5000) {
				bad = append(bad, fmt.Sprintf("capacity %s: GET /v1/crises gave %.0f rows, crisis list %.0f", res.Variant, all, x["listed_rows"]))
			}
		}
		if res.Baseline != nil && res.RatioOf == "" && res.Scenario != "warning-to-action" {
			bad = append(bad, fmt.Sprintf("%s %s: no ratio", res.Scenario, res.Variant))
		}
	}
	for s, n := range want {
		if wanted(s) || s == "stack" {
			if got[s] != n {
				bad = append(bad, fmt.Sprintf("scenario %s reported %d results, want %d", s, got[s], n))
			}
		}
	}
	if got["stack"] > 0 && want["stack"] == 0 {
		bad = append(bad, "a deployment's run reported the embedded stack's start-up")
	}
	for _, f := range r.Failures {
		bad = append(bad, "failed: "+f)
	}
	return bad
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// cells are one result's columns, as both tables print them; missed is how
// a missed target is marked in that table.
func (res *Result) cells(missed string) []string {
	base := "—"
	if res.Baseline != nil {
		base = res.Baseline.short()
	}
	ratio := "—"
	if res.RatioOf != "" {
		ratio = fmt.Sprintf("%.2f× (%s)", res.Ratio, res.RatioOf)
	}
	target := res.Target
	switch {
	case res.Met == nil:
	case *res.Met:
		target = "met: " + target
	default:
		target = missed + ": " + target
	}
	return []string{res.Scenario, res.Variant, res.Demarche.short(), base, ratio, target}
}

// tableHeader names the columns of both tables.
var tableHeader = []string{"scenario", "variant", "Démarche", "bare baseline", "ratio", "target"}

// WriteTable prints one line per result: Démarche, baseline, ratio, target.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for i := range r.Results {
		fmt.Fprintln(tw, strings.Join(r.Results[i].cells("MISSED"), "\t"))
	}
	_ = tw.Flush() // a tabwriter over w fails only if w does, and w's errors are its owner's
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
	if head, rows := r.cpuTable(); rows != nil {
		fmt.Fprintln(w, "\nCPU milliseconds per operation, by process (all share this machine's cores):")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, row := range rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		_ = tw.Flush() // as above
	}
}

// cpuTable is the CPU each process spent per operation, one row per
// measured side of a result that has it (Measure.CPU), processes as
// columns, those that spent most first, their total last.
func (r *Report) cpuTable() (head []string, rows [][]string) {
	spent := map[string]float64{}
	for _, res := range r.Results {
		for _, m := range []*Measure{&res.Demarche, res.Baseline} {
			if m == nil {
				continue
			}
			for k, v := range m.CPU {
				if k != cpuTotal {
					spent[k] += v * float64(m.Count)
				}
			}
		}
	}
	if len(spent) == 0 {
		return nil, nil
	}
	procs := sortedKeys(spent)
	slices.SortStableFunc(procs, func(a, b string) int { return cmp.Compare(spent[b], spent[a]) })
	procs = append(procs, cpuTotal)
	head = append([]string{"scenario", "variant", "side"}, procs...)
	for _, res := range r.Results {
		for _, sm := range []struct {
			side string
			m    *Measure
		}{{"Démarche", &res.Demarche}, {"bare", res.Baseline}} {
			if sm.m == nil || sm.m.CPU == nil {
				continue
			}
			row := []string{res.Scenario, res.Variant, sm.side}
			for _, p := range procs {
				v, ok := sm.m.CPU[p]
				if !ok {
					row = append(row, "—")
					continue
				}
				row = append(row, num(v))
			}
			rows = append(rows, row)
		}
	}
	return head, rows
}

// WriteMarkdown writes the table as Markdown (docs/performance.md takes it).
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(tableHeader, " | "), strings.Repeat("---|", len(tableHeader)))
	for i := range r.Results {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r.Results[i].cells("**missed**"), " | "))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "\nFailed: %s\n", f)
	}
	if head, rows := r.cpuTable(); rows != nil {
		fmt.Fprintf(w, "\nCPU milliseconds per operation, by process (all share this machine's cores):\n\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
		for _, row := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	fmt.Fprintf(w, "\n%d cores (%s), %d MB, %s, commit %.12s, load average at start %s; `%s`, %.0f s; on %s.\n", r.Machine.Cores, r.Machine.CPU,
		r.Machine.MemoryMB, r.Machine.GoVersion, r.Machine.Commit, r.Machine.LoadAvg, r.Command, r.Seconds, r.Deployment)
}

func (m Measure) short() string {
	var parts []string
	if m.PerSecond > 0 {
		parts = append(parts, fmt.Sprintf("%s/s", num(m.PerSecond)))
	}
	if m.Latency != nil {
		parts = append(parts, fmt.Sprintf("p50 %s p99 %s", ms(m.Latency.P50), ms(m.Latency.P99)))
	}
	for _, k := range sortedKeys(m.Extra) {
		parts = append(parts, fmt.Sprintf("%s %s", k, num(m.Extra[k])))
	}
	if m.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d errors", m.Errors))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%s ms", num(v))
}
