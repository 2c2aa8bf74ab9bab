package metricstest

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Watch is a metric docs/operations.md tells an operator to watch ("What to
// watch" and "Sizing"), the services that serve it (`demarche serve NAME`),
// and whether it is served from their start or from a first observation.
type Watch struct {
	Metric string
	Owners []string
	// AtStart: served as soon as its owner started (else: at its first
	// observation: a request, a workflow task).
	AtStart bool
	// Series, per owner, is a series it serves from its start (a label its
	// owner pre-creates: its consumer, an endpoint); "" when any will do.
	Series map[string]string
}

var (
	consumers = map[string]string{"audit": `consumer="audit"`, "eventlog": `consumer="eventlog"`,
		"partners": `consumer="partners"`, "earlywarning": `consumer="earlywarning-signals"`}
	endpoints = map[string]string{"roster": `endpoint="demarche.roster.search"`, "funding": `endpoint="demarche.funding.balance"`,
		"audit": `endpoint="demarche.audit.chain"`, "schema": `endpoint="demarche.schema.get"`,
		"partners": `endpoint="demarche.partners.list"`, "earlywarning": `endpoint="demarche.earlywarning.score"`}
	// Services are the services `demarche serve` runs.
	Services = []string{"roster", "funding", "audit", "schema", "eventlog", "partners", "earlywarning", "worker", "gateway"}
)

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Watched is every metric docs/operations.md names in "What to watch" and
// "Sizing": a test compares it with the document (DocumentedWatch), another
// scrapes each owner for it.
var Watched = []Watch{
	{Metric: "demarche_audit_alarms_total", Owners: []string{"audit"}, AtStart: true, Series: map[string]string{"audit": `kind="chain-isolated"`}},
	{Metric: "demarche_audit_isolated_chains", Owners: []string{"audit"}, AtStart: true},
	{Metric: "demarche_funding_ledger_alarms_total", Owners: []string{"funding"}, AtStart: true, Series: map[string]string{"funding": `alarm="broken"`}},
	{Metric: "demarche_forged_events_total", Owners: []string{"partners"}, AtStart: true, Series: map[string]string{"partners": `consumer="partners"`}},
	{Metric: "demarche_signals_refused_total", Owners: []string{"earlywarning"}, AtStart: true, Series: map[string]string{"earlywarning": `via="stream"`}},
	{Metric: "demarche_dead_letters_total", Owners: keys(consumers), AtStart: true, Series: consumers},
	{Metric: "demarche_consumer_lag_events", Owners: keys(consumers), AtStart: true, Series: consumers},
	{Metric: "demarche_deadline_breaches_total", Owners: []string{"worker"}, AtStart: true, Series: map[string]string{"worker": `deadline="fact-finding report"`}},
	{Metric: "demarche_warning_to_action_seconds", Owners: []string{"worker"}, AtStart: true, Series: map[string]string{"worker": `opened_by="earlywarning"`}},
	{Metric: "demarche_ready", Owners: Services, AtStart: true},
	{Metric: "demarche_rpc_requests_total", Owners: keys(endpoints), AtStart: true, Series: endpoints},
	{Metric: "demarche_rpc_errors_total", Owners: keys(endpoints), AtStart: true, Series: endpoints},
	{Metric: "demarche_rpc_request_duration_seconds", Owners: keys(endpoints)},
	{Metric: "demarche_http_requests_total", Owners: []string{"gateway"}, AtStart: true, Series: map[string]string{"gateway": `route="/v1/crises/{id}"`}},
	{Metric: "demarche_http_request_duration_seconds", Owners: []string{"gateway"}},
	{Metric: "temporal_workflow_task_schedule_to_start_latency_seconds", Owners: []string{"worker"}},
}

var docMetric = regexp.MustCompile(`\b(?:demarche|temporal)_[a-z0-9_]*[a-z0-9]\b`)

// DocumentedWatch reads the metric names of docs/operations.md's "What to
// watch" and "Sizing" sections (path is the document).
func DocumentedWatch(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	found := 0
	for _, sec := range strings.Split(string(b), "\n## ") {
		title, _, _ := strings.Cut(sec, "\n")
		if !strings.HasPrefix(title, "What to watch") && !strings.HasPrefix(title, "Sizing") {
			continue
		}
		found++
		for _, m := range docMetric.FindAllString(sec, -1) {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	if found != 2 {
		return nil, fmt.Errorf("%s: found %d of the sections \"What to watch\" and \"Sizing\"", path, found)
	}
	slices.Sort(out)
	return out, nil
}

// Has says whether served (from Parse) holds a series of metric (a
// histogram's _count, _bucket or _sum included) whose labels contain
// series ("" for any).
func Has(served map[string]float64, metric, series string) bool {
	for k := range served {
		name, labels, _ := strings.Cut(k, "{")
		if name != metric && name != metric+"_count" && name != metric+"_bucket" && name != metric+"_sum" {
			continue
		}
		if series == "" || strings.Contains(labels, series) {
			return true
		}
	}
	return false
}

// Missing lists what owner does not serve of the watched metrics it owns
// (atStart: only those served from the start).
func Missing(served map[string]float64, owner string, atStart bool) []string {
	var out []string
	for _, w := range Watched {
		if !slices.Contains(w.Owners, owner) || (atStart && !w.AtStart) {
			continue
		}
		series := w.Series[owner]
		if !Has(served, w.Metric, series) {
			out = append(out, fmt.Sprintf("%s{%s}", w.Metric, series))
		}
	}
	return out
}
