package gateway

// The console's timeline and report (issue 24, item 7) and the auditor's
// view (item 5). Every page reads through the application layer as the
// API's routes do (app.CrisisReport, app.AuditStatus, ...): the same view
// rules, the same audited reads; the forms (comment, verify, reconcile) are
// CSRF-checked posts answered with a redirect (post/redirect/get).

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/workflows/crisis"
)

// crisisQuery names the crisis of a console request, for the audit trail.
func crisisQuery(r *http.Request) app.CrisisQuery {
	return app.CrisisQuery{ID: r.PathValue("id"), Via: r.Method + " " + r.URL.Path}
}

// timeline is one feed per crisis: its trail (signals, decisions, refusals,
// controls, sharing, deadlines, stages, money, comments), the comment form
// for those who may comment, and the report's exports.
func (c *console) timeline(w http.ResponseWriter, r *http.Request, u *user) {
	rep, err := c.s.app.CrisisReport(r.Context(), u.Principal, crisisQuery(r))
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	k, msg := c.keptOf(r, u)
	notice := ""
	if r.URL.Query().Get("done") == "comment" {
		notice = "Comment recorded."
	}
	cr := rep.State.GetCrisis()
	data := map[string]any{"Title": "Timeline · " + cr.GetTitle(), "Error": msg, "Notice": notice, "Kept": k, "R": rep, "C": cr,
		"Entries": rep.Timeline, "Key": ids.New(), "Closed": rep.State.GetClosedAt() != nil,
		"CanComment": authz.Allowed(authz.Comment, u.Roles) && rep.State.GetClosedAt() == nil,
		"Live":       "/console/events?crisis=" + url.QueryEscape(cr.GetId())}
	c.render(w, r, http.StatusOK, "timeline", u, data)
}

// report is the crisis's report in a format (?format=html for print, csv,
// json): the API's bytes (GET /v1/crises/{id}/report), with the session.
func (c *console) report(w http.ResponseWriter, r *http.Request, u *user) {
	format, err := reportFormat(r)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	if r.URL.Query().Get("format") == "" {
		format = "html"
	}
	rep, err := c.s.app.CrisisReport(r.Context(), u.Principal, crisisQuery(r))
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	writeReport(w, rep, format)
}

// comment records a comment on the crisis's timeline (the comment control,
// as POST /v1/crises/{id}/controls/comment).
func (c *console) comment(w http.ResponseWriter, r *http.Request, u *user) {
	id := r.PathValue("id")
	page := "/console/crises/" + url.PathEscape(id) + "/timeline"
	text := strings.TrimSpace(r.PostFormValue("text"))
	if text == "" {
		c.refused(w, r, u, page, "form-comment", "", "Not recorded: Comment: write the comment (it is empty)")
		return
	}
	if _, err := c.s.app.Control(r.Context(), u.Principal, c.update(r, id), "comment", &demarchev1.CommentControl{Text: text}); err != nil {
		_, msg := refusal(err)
		c.refused(w, r, u, page, "form-comment", "", "Refused — the comment was not recorded: "+msg)
		return
	}
	http.Redirect(w, r, page+"?done=comment#feed", http.StatusSeeOther)
}

// auditPage is the auditor's view of one crisis: its chain's status
// (verified now, anchored, the runs recorded on it), buttons to verify or
// reconcile, the decision trail from the histories, the crisis in the
// Temporal UI and its evidence bundle.
func (c *console) auditPage(w http.ResponseWriter, r *http.Request, u *user) {
	q := crisisQuery(r)
	st, cs, err := c.s.app.AuditStatus(r.Context(), u.Principal, q)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	rep, err := c.s.app.CrisisReport(r.Context(), u.Principal, q)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	k, msg := c.keptOf(r, u)
	notice := ""
	switch r.URL.Query().Get("done") {
	case "verify":
		notice = "Verification run; its result is recorded on the chain (below)."
	case "reconcile":
		notice = "Reconciliation run; its result is recorded on the chain (below)."
	}
	cr := st.GetCrisis()
	ui := ""
	if c.s.temporalUI != "" && c.s.namespace != "" {
		ui = c.s.temporalUI + "/namespaces/" + url.PathEscape(c.s.namespace) + "/workflows/" + url.PathEscape(crisis.WorkflowID(cr.GetId()))
	}
	var alarms []app.AuditRun
	for _, run := range cs.Runs {
		if !run.OK {
			alarms = append(alarms, run)
		}
	}
	data := map[string]any{"Title": "Audit · " + cr.GetTitle(), "Error": msg, "Notice": notice, "Kept": k, "C": cr, "State": st, "Chain": cs,
		"Alarms": alarms, "Entries": rep.Timeline, "TemporalUI": ui, "Key": ids.New()}
	c.render(w, r, http.StatusOK, "audit", u, data)
}

// auditVerify runs a verification from the page (app.VerifyRun: the
// result recorded on the chain), then back to the page.
func (c *console) auditVerify(w http.ResponseWriter, r *http.Request, u *user) {
	c.auditRun(w, r, u, "verify", c.s.app.VerifyRun)
}

// auditReconcile runs a reconciliation from the page (app.ReconcileRun).
func (c *console) auditReconcile(w http.ResponseWriter, r *http.Request, u *user) {
	c.auditRun(w, r, u, "reconcile", c.s.app.ReconcileRun)
}

func (c *console) auditRun(w http.ResponseWriter, r *http.Request, u *user, kind string, run func(ctx context.Context, p *authn.Principal, q app.CrisisQuery) (*app.AuditRun, error)) {
	page := "/console/crises/" + url.PathEscape(r.PathValue("id")) + "/audit"
	if _, err := run(r.Context(), u.Principal, crisisQuery(r)); err != nil {
		_, msg := refusal(err)
		c.refused(w, r, u, page, "form-audit-"+kind, "", "The "+kind+" run did not complete: "+msg)
		return
	}
	http.Redirect(w, r, page+"?done="+kind+"#runs", http.StatusSeeOther)
}

// evidence downloads the crisis's evidence bundle (as GET /v1/audit/evidence/{id}).
func (c *console) evidence(w http.ResponseWriter, r *http.Request, u *user) {
	b, err := c.s.app.Evidence(r.Context(), u.Principal, crisisQuery(r))
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	writeEvidence(w, r.PathValue("id"), b)
}
