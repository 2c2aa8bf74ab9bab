package gateway

// A crisis's report and the auditor's runs over HTTP (app/report.go,
// app/audit.go): the same bytes for the API and the console.
//
//	GET  /v1/crises/{id}/report?format=json|csv|html  the timeline with the crisis, figures and lessons
//	GET  /v1/audit/evidence/{id}                      the evidence bundle (tar.gz, unsigned)
//	POST /v1/audit/verify/{id}                        verify the crisis's chain now; the result is recorded on it
//	POST /v1/audit/reconcile/{id}                     reconcile histories, chain, money; the result is recorded on it

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/services/gateway/app"
)

// reportFormats are the formats of a crisis's report.
var reportFormats = []string{"json", "csv", "html"}

// reportFormat is the ?format= asked for (json when none), or a field error.
func reportFormat(r *http.Request) (string, error) {
	f := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("format")))
	switch f {
	case "":
		return "json", nil
	case "json", "csv", "html":
		return f, nil
	}
	return "", &errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("format: %q is not a report format (allowed: %s)", truncateText(f, 20), strings.Join(reportFormats, ", "))}
}

func truncateText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// reportJSON is the JSON report: the crisis's state as the reader may read
// it (the API's CrisisState JSON), the timeline, figures and lessons.
func reportJSON(rep *app.Report) ([]byte, error) {
	st, err := apijson.Marshal(rep.State)
	if err != nil {
		return nil, err
	}
	var figures json.RawMessage
	if f := rep.State.GetFigures(); f != nil {
		if figures, err = apijson.Marshal(f); err != nil {
			return nil, err
		}
	}
	timeline := rep.Timeline
	if timeline == nil {
		timeline = []app.TimelineEntry{}
	}
	lessons := rep.State.GetLessons()
	if lessons == nil {
		lessons = []string{}
	}
	return json.MarshalIndent(map[string]any{
		"crisisId": rep.State.GetCrisis().GetId(), "generatedAt": rep.GeneratedAt.Format(time.RFC3339), "generatedBy": rep.GeneratedBy,
		"partnerView": rep.PartnerView, "crisis": json.RawMessage(st), "timeline": timeline, "figures": figures, "lessons": lessons,
	}, "", "  ")
}

// reportCSV is the timeline as CSV, one row per entry, then the figures and
// lessons as rows of kind "figure" and "lesson" (none in a partner's view).
func reportCSV(rep *app.Report) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	rows := [][]string{{"time", "kind", "what", "principal", "rule", "rationale", "workflow", "history_event"}}
	for _, e := range rep.Timeline {
		rows = append(rows, []string{e.Time.UTC().Format(time.RFC3339), e.Kind, csvSafe(e.What), csvSafe(e.Principal), csvSafe(e.Rule), csvSafe(e.Rationale), e.Workflow, historyEvent(e.EventID)})
	}
	for _, f := range reportFigures(rep) {
		rows = append(rows, []string{"", "figure", csvSafe(f), "", "", "", "", ""})
	}
	for _, l := range rep.State.GetLessons() {
		rows = append(rows, []string{"", "lesson", csvSafe(l), "", "", "", "", ""})
	}
	if err := w.WriteAll(rows); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func historyEvent(id int64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprint(id)
}

// csvSafe keeps a spreadsheet from reading a cell as a formula (a comment
// or rationale starting with =, +, - or @ is people's text, not a formula).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// reportFigures are the crisis's figures in words (none before closure, and
// none in a partner's view, which has no figures).
func reportFigures(rep *app.Report) []string {
	f := rep.State.GetFigures()
	if f == nil {
		return nil
	}
	out := []string{
		"warning to action: " + humanDuration(f.GetWarningToAction().AsDuration()),
		fmt.Sprintf("decisions: %d", f.GetDecisions()),
		fmt.Sprintf("good-offices engagements: %d", f.GetEngagements()),
		"disbursed: USD " + groupThousands(f.GetFundingDisbursedUsd()),
		fmt.Sprintf("deadlines breached: %d", f.GetDeadlinesBreached()),
	}
	if f.GetTotal() != nil {
		out = append(out, "warning to closure: "+humanDuration(f.GetTotal().AsDuration()))
	}
	for _, st := range f.GetStageTimes() {
		out = append(out, fmt.Sprintf("time in %s: %s", stageWords(st.GetStage()), humanDuration(st.GetTime().AsDuration())))
	}
	return out
}

var reportPage = template.Must(template.New("report").Funcs(pageFuncs()).ParseFS(consoleFiles, "console/templates/report.html"))

// reportCSS is the report's style sheet, inline so that a saved report is
// one file; the report's Content-Security-Policy allows that one sheet by
// its hash, and nothing else (no script, no other style, no request).
var reportCSS, reportCSP = func() (template.CSS, string) {
	b, err := consoleFiles.ReadFile("console/static/report.css")
	if err != nil {
		panic(err) // embedded: present in every build
	}
	sum := sha256.Sum256(b)
	return template.CSS(b), "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
}()

// reportHTML is the report as one self-contained page for print (its print
// style sheet is inline: a browser's "Save as PDF" makes the PDF).
func reportHTML(rep *app.Report) ([]byte, error) {
	var buf bytes.Buffer
	c := rep.State.GetCrisis()
	err := reportPage.ExecuteTemplate(&buf, "report", map[string]any{
		"R": rep, "C": c, "Type": words(c.GetCrisisType().Slug()), "Figures": reportFigures(rep), "Lessons": rep.State.GetLessons(),
		"Outcome": rep.State.GetOutcome(), "Closed": rep.State.GetClosedAt() != nil, "CSS": reportCSS,
	})
	return buf.Bytes(), err
}

// writeReport answers a report in a format.
func writeReport(w http.ResponseWriter, rep *app.Report, format string) {
	var b []byte
	var err error
	ctype := "application/json"
	switch format {
	case "csv":
		b, err = reportCSV(rep)
		ctype = "text/csv; charset=utf-8"
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "timeline-"+rep.State.GetCrisis().GetId()+".csv"))
	case "html":
		b, err = reportHTML(rep)
		ctype = "text/html; charset=utf-8"
		w.Header().Set("Content-Security-Policy", reportCSP)
	default:
		b, err = reportJSON(rep)
	}
	if err != nil {
		writeError(w, fmt.Errorf("%w: the report could not be written: %v", errs.ErrInternal, err))
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store") // confidential crises' reports stay out of caches
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // the status is sent: a failed write means the client went away
}

// getReport answers a crisis's report (app.CrisisReport: read as the crisis
// is read, a partner's the partner's view).
func (s *Service) getReport(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	format, err := reportFormat(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.app.CrisisReport(r.Context(), p, app.CrisisQuery{ID: r.PathValue("id"), Via: via(r)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeReport(w, rep, format)
}

// writeEvidence answers an evidence bundle as a download.
func writeEvidence(w http.ResponseWriter, id string, b []byte) {
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "evidence-"+id+".tar.gz"))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // the status is sent: a failed write means the client went away
}

func (s *Service) getEvidence(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	b, err := s.app.Evidence(r.Context(), p, app.CrisisQuery{ID: r.PathValue("id"), Via: via(r)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeEvidence(w, r.PathValue("id"), b)
}

// auditRunJSON is a run as the API answers it.
func auditRunJSON(run *app.AuditRun) map[string]any {
	return map[string]any{"kind": run.Kind, "ok": run.OK, "result": run.Result, "principal": run.Principal, "at": run.At.UTC().Format(time.RFC3339)}
}

func (s *Service) postAuditVerify(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	run, err := s.app.VerifyRun(r.Context(), p, app.CrisisQuery{ID: r.PathValue("id"), Via: via(r)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, auditRunJSON(run))
}

func (s *Service) postAuditReconcile(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	run, err := s.app.ReconcileRun(r.Context(), p, app.CrisisQuery{ID: r.PathValue("id"), Via: via(r)})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, auditRunJSON(run))
}
