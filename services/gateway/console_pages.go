package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/ids"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/services/gateway/claims"
	"github.com/demarche/demarche/workflows/crisis"
)

// boardStages are the board's columns, in the lifecycle's order.
var boardStages = []demarchev1.Stage{
	demarchev1.Stage_STAGE_WARNING, demarchev1.Stage_STAGE_GOOD_OFFICES, demarchev1.Stage_STAGE_FACT_FINDING,
	demarchev1.Stage_STAGE_ENVOY_DEPLOYMENT, demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING, demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP,
}

type pendingView struct {
	Kind, Who, Role string
	Stage           demarchev1.Stage
	Due, AtRisk     time.Time
	Mine            bool // the user holds the role that decides it
	// Claim is the person who said they are on it (nil: nobody);
	// ClaimMine when it is the user (crisisclaims.go).
	Claim     *claims.Claim
	ClaimAgo  string
	ClaimMine bool
}

type deadlineView struct {
	Name, Status string
	Stage        demarchev1.Stage
	Due, AtRisk  time.Time
	Running      bool
}

type fundingView struct {
	ID, Fund, Purpose, Requester, DecidedBy, Status string
	Amount                                          int64
	Own                                             bool // requested by the user: four-eyes
	CrisisID, CrisisTitle                           string
	Key                                             string
	// The approval card's context: the request's rationale and when it was
	// filed, the crisis's severity and current stage.
	Rationale   string
	RequestedAt time.Time
	Waiting     string // time waiting since filed, in words
	Severity    int32
	Stage       demarchev1.Stage
	// The quorum (the fund's rules, applied when filed): who approved so
	// far, how many distinct approvers it needs, and whether the user is
	// one of them (the same person never approves twice).
	Approvers []string
	Need      int32
	Approved  bool
	// The fund (HasFund: the user may read funds and the funding service
	// answered): its name, balance, per-crisis ceiling and what is left of
	// the ceiling for this crisis (approved requests from the fund deducted).
	HasFund                       bool
	FundName, FundProblem         string
	Balance, Ceiling, CeilingLeft int64
}

type cardView struct {
	ID, Title, Country, Type, Confidentiality string
	Severity                                  int32
	Drill                                     bool
	Stages                                    []demarchev1.Stage
	Pending                                   []pendingView
	Deadlines                                 []deadlineView
	Outcome                                   string
	// HandOver is whom a closed crisis was handed over to, in words ("" when
	// it was not): the Peacebuilding Commission, or "ECOWAS (regional
	// organisation)".
	HandOver string
	// LeadPresence is the field presence leading on the ground ("": none named).
	LeadPresence string
	OpenedAt     time.Time
	// Current is the most recently entered stage still running (a drill's
	// one card goes to its column).
	Current demarchev1.Stage
	// Closing: every stage has ended and the closure decision waits.
	Closing, Closed bool
}

type columnView struct {
	Stage demarchev1.Stage
	// Slug and Name head the column ("closure" for crises whose stages have
	// all ended, waiting for the closure decision).
	Slug, Name string
	Cards      []cardView
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func pendingOf(st *demarchev1.CrisisState, u *user) []pendingView {
	var out []pendingView
	for _, p := range st.GetPendingDecisions() {
		out = append(out, pendingView{Kind: p.GetKind(), Who: p.GetWho(), Role: words(p.GetRole().Slug()), Stage: p.GetStage(),
			Due: ts(p.GetDueAt()), Mine: u.Has(p.GetRole())})
	}
	return out
}

func deadlinesOf(st *demarchev1.CrisisState) []deadlineView {
	var out []deadlineView
	closed := st.GetClosedAt() != nil
	for _, d := range st.GetDeadlines() {
		s := d.GetStatus()
		// A closed crisis (a finished drill among them) runs no deadline:
		// nothing counts down, nothing is "overdue" for ever.
		out = append(out, deadlineView{Name: d.GetName(), Status: words(s.Slug()), Stage: d.GetStage(), Due: ts(d.GetDueAt()), AtRisk: ts(d.GetAtRiskAt()),
			Running: !closed && (s == demarchev1.DeadlineStatus_DEADLINE_STATUS_RUNNING || s == demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK || s == demarchev1.DeadlineStatus_DEADLINE_STATUS_BREACHED)})
	}
	return out
}

func cardOf(st *demarchev1.CrisisState, u *user) cardView {
	c := st.GetCrisis()
	cv := cardView{ID: c.GetId(), Title: c.GetTitle(), Country: c.GetCountryCode(), Type: words(c.GetCrisisType().Slug()),
		Confidentiality: c.GetConfidentiality().Slug(), Severity: c.GetSeverity(), Drill: c.GetDrill(),
		Stages: sortedStages(st.GetActiveStages()), Pending: pendingOf(st, u), OpenedAt: ts(c.GetOpenedAt()),
		Current: st.GetCurrentStage(), Closed: st.GetClosedAt() != nil, LeadPresence: c.GetLeadPresence()}
	cv.Closing = !cv.Closed && len(cv.Stages) == 0
	for _, d := range deadlinesOf(st) {
		if d.Running {
			cv.Deadlines = append(cv.Deadlines, d)
		}
	}
	if st.GetOutcome() != demarchev1.Outcome_OUTCOME_UNSPECIFIED {
		cv.Outcome = st.GetOutcome().Slug()
	}
	if to := st.GetHandOverTo(); to != demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_UNSPECIFIED {
		cv.HandOver = "the " + demarchev1.EnumWords(to.Descriptor(), to.Number())
		if p := st.GetHandOverPartner(); p != "" {
			cv.HandOver = p + " (" + demarchev1.EnumWords(to.Descriptor(), to.Number()) + ")"
		}
	}
	return cv
}

// board is the crises by stage, with who is waiting on whom.
func (c *console) board(w http.ResponseWriter, r *http.Request, u *user) {
	k, msg := c.keptOf(r, u)
	c.renderBoard(w, r, u, http.StatusOK, map[string]any{"Error": msg, "Kept": k})
}

// renderBoard: a column per stage, and closure (every stage ended, the
// closure decision waiting). Drills are left out unless ?drills=1 asks for
// them (the board is for real crises; a drill is one card, in the column of
// its current stage, and never among the recently closed unless shown).
func (c *console) renderBoard(w http.ResponseWriter, r *http.Request, u *user, status int, extra map[string]any) {
	showDrills := r.URL.Query().Get("drills") == "1"
	rows, err := c.visibleList(r.Context(), u, crisis.Filter{OpenOnly: true}, 200)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	closedRows, err := c.visibleList(r.Context(), u, crisis.Filter{Stage: demarchev1.Stage_STAGE_CLOSED, ExcludeDrills: !showDrills}, 8)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	cols := make([]columnView, len(boardStages)+1)
	for i, s := range boardStages {
		cols[i] = columnView{Stage: s, Slug: s.Slug(), Name: stageWords(s)}
	}
	closing := &cols[len(boardStages)]
	*closing = columnView{Stage: demarchev1.Stage_STAGE_CLOSED, Slug: "closure", Name: "closure"}
	open, drills := 0, 0
	for _, st := range c.states(r, u, rows) {
		card := cardOf(st, u)
		if card.Drill {
			drills++
			if !showDrills {
				continue
			}
		} else {
			open++
		}
		if card.Closing {
			closing.Cards = append(closing.Cards, card)
			continue
		}
		for i, s := range boardStages {
			if card.Drill && len(card.Stages) > 1 && s != card.Current {
				continue // one card per drill
			}
			if slices.Contains(card.Stages, s) {
				cols[i].Cards = append(cols[i].Cards, card)
			}
		}
	}
	var closed []cardView
	for _, st := range c.states(r, u, closedRows) {
		closed = append(closed, cardOf(st, u))
	}
	data := map[string]any{"Title": "Board", "Columns": cols, "Closed": closed, "Open": open, "Drills": drills, "ShowDrills": showDrills,
		"Live": "/console/events", "Types": crisisTypes(), "Countries": []string{"GN", "ML", "NE", "BF", "SD", "ET", "UA", "GE", "VE", "MM"}}
	for k, v := range extra {
		data[k] = v
	}
	c.render(w, r, status, "board", u, data)
}

func crisisTypes() []string {
	var out []string
	for n := range demarchev1.CrisisType_name {
		if n != 0 {
			out = append(out, demarchev1.CrisisType(n).Slug())
		}
	}
	slices.Sort(out)
	return out
}

// openCrisis opens a crisis (app.OpenCrisis, as the API's POST /v1/crises).
func (c *console) openCrisis(w http.ResponseWriter, r *http.Request, u *user) {
	sev, err := strconv.Atoi(r.PostFormValue("severity"))
	if err != nil {
		c.refused(w, r, u, "/console/", "open-form", "", "The crisis was not opened: severity: choose a severity from 1 to 5")
		return
	}
	ct, err := demarchev1.ParseCrisisType(r.PostFormValue("type"))
	if err != nil {
		c.refused(w, r, u, "/console/", "open-form", "", "The crisis was not opened: crisis type: "+err.Error())
		return
	}
	// Confidentiality is never guessed: a value not understood is refused,
	// not taken as public.
	conf, err := demarchev1.ParseConfidentiality(r.PostFormValue("confidentiality"))
	if err != nil {
		c.refused(w, r, u, "/console/", "open-form", "", "The crisis was not opened: confidentiality: "+err.Error())
		return
	}
	var shared []string
	for _, p := range strings.Split(r.PostFormValue("shared_with"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			shared = append(shared, strings.ToUpper(p))
		}
	}
	req := &demarchev1.OpenCrisisRequest{Crisis: &demarchev1.Crisis{
		Title: strings.TrimSpace(r.PostFormValue("title")), CountryCode: strings.ToUpper(strings.TrimSpace(r.PostFormValue("country"))),
		CrisisType: ct, Severity: int32(sev), Confidentiality: conf, SharedWith: shared}}
	opened, err := c.s.app.OpenCrisis(r.Context(), u.Principal, req)
	if err != nil {
		_, msg := refusal(err)
		c.refused(w, r, u, "/console/", "open-form", "", "The crisis was not opened: "+msg)
		return
	}
	http.Redirect(w, r, "/console/crises/"+url.PathEscape(opened.State.GetCrisis().GetId())+"?done=opened", http.StatusSeeOther)
}

// fundingOf lists a crisis's funding requests from its decisions. An
// approval that did not complete the request's quorum leaves it awaiting a
// decision: the crisis's pending funding-decision names the request and its
// quorum.
func fundingOf(st *demarchev1.CrisisState, u *user) []fundingView {
	quorum := map[string]*demarchev1.PendingDecision{}
	for _, p := range st.GetPendingDecisions() {
		if p.GetKind() == "funding-decision" && p.GetRequestId() != "" {
			quorum[p.GetRequestId()] = p
		}
	}
	var out []fundingView
	for _, d := range st.GetDecisions() {
		switch {
		case d.GetRequest().GetFundingRequest() != nil:
			fr := d.GetRequest().GetFundingRequest()
			out = append(out, fundingView{ID: fr.GetRequestId(), Fund: fr.GetFund(), Purpose: fr.GetPurpose(), Amount: fr.GetAmountUsd(),
				Requester: d.GetPrincipal(), Status: "awaiting decision", Own: d.GetPrincipal() == u.Subject,
				CrisisID: st.GetCrisis().GetId(), CrisisTitle: st.GetCrisis().GetTitle(), Key: ids.New(),
				Rationale: d.GetRationale(), RequestedAt: ts(d.GetDecidedAt()), Severity: st.GetCrisis().GetSeverity(),
				Stage: st.GetCurrentStage(), Need: 1})
		case d.GetRequest().GetFundingDecision() != nil:
			fd := d.GetRequest().GetFundingDecision()
			for i := range out {
				if out[i].ID != fd.GetRequestId() {
					continue
				}
				if !fd.GetApprove() {
					out[i].Status, out[i].DecidedBy = "rejected", d.GetPrincipal()
					continue
				}
				out[i].Approvers = append(out[i].Approvers, d.GetPrincipal())
				out[i].Approved = out[i].Approved || d.GetPrincipal() == u.Subject
				if q, waits := quorum[fd.GetRequestId()]; waits {
					out[i].Need = q.GetApprovalsRequired()
					continue // one approval of several: still awaiting
				}
				out[i].Status, out[i].DecidedBy = "approved", d.GetPrincipal()
				out[i].Need = int32(len(out[i].Approvers))
			}
		}
	}
	for i := range out {
		if q, ok := quorum[out[i].ID]; ok && q.GetApprovalsRequired() > 0 {
			out[i].Need = q.GetApprovalsRequired()
		}
	}
	return out
}

// withFunds adds each request's fund to its card: balance, ceiling and the
// ceiling left for its crisis (the crisis's approved requests from the fund
// deducted). Only for a user who may read funds; nothing when the funding
// service does not answer (the card then says so, and nothing false).
func (c *console) withFunds(r *http.Request, u *user, open []fundingView, all map[string][]fundingView) []fundingView {
	funds, err := c.s.app.Funds(r.Context(), u.Principal)
	if err != nil {
		c.s.log.Debug("console: fund balances not read", zap.Error(err))
		return open
	}
	byID := map[string]*demarchev1.FundBalance{}
	for _, f := range funds {
		byID[f.GetFund().GetId()] = f
	}
	for i := range open {
		f := byID[open[i].Fund]
		if f == nil {
			continue
		}
		v := &open[i]
		v.HasFund, v.FundName, v.FundProblem = true, f.GetFund().GetName(), f.GetProblem()
		v.Balance, v.Ceiling = f.GetBalanceUsd(), f.GetFund().GetPerCrisisCeilingUsd()
		v.CeilingLeft = v.Ceiling
		for _, other := range all[v.CrisisID] {
			if other.Fund == v.Fund && other.Status == "approved" {
				v.CeilingLeft -= other.Amount
			}
		}
	}
	return open
}

type decisionView struct {
	Number               int32
	Kind, Principal, Why string
	What                 string
	At                   time.Time
	Automatic            bool
}

type timelineView struct {
	Stage              demarchev1.Stage
	Run                int32
	Status, Reason     string
	Entered, Completed time.Time
	Duration           string
}

// crisisPage shows one crisis: what it waits for (with forms), deadlines,
// timeline, partners, funding, decisions and warnings.
func (c *console) crisisPage(w http.ResponseWriter, r *http.Request, u *user) {
	notice := ""
	if d := r.URL.Query().Get("done"); d != "" {
		notice = "Recorded: " + kindWords(d) + "."
		switch d {
		case "opened":
			notice = "Crisis opened."
		case "sharing":
			notice = "Sharing changed."
		case "claim":
			notice = "Claimed: the others see that you are on it until you release it or it lapses."
		case "release":
			notice = "Claim released."
		}
	}
	k, msg := c.keptOf(r, u)
	c.renderCrisis(w, r, u, r.PathValue("id"), http.StatusOK, map[string]any{"Notice": notice, "Error": msg, "Kept": k})
}

// followUpView is a running sustained follow-up on the crisis page.
type followUpView struct {
	NextDue         time.Time
	Done, Planned   int32
	CheckInPending  bool // a check-in is due (and listed as waiting)
	CheckInKind     string
	CheckInWho      string
	CheckInMine     bool
	CheckInRoleName string
}

func (c *console) renderCrisis(w http.ResponseWriter, r *http.Request, u *user, id string, status int, extra map[string]any) {
	st, err := c.state(r, u, id)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	cr := st.GetCrisis()
	var tl []timelineView
	for _, s := range st.GetTimeline() {
		v := timelineView{Stage: s.GetStage(), Run: s.GetRun(), Status: words(s.GetStatus().Slug()), Reason: s.GetReason(),
			Entered: ts(s.GetEnteredAt()), Completed: ts(s.GetCompletedAt())}
		if s.GetDuration() != nil {
			v.Duration = humanDuration(s.GetDuration().AsDuration())
		} else if !v.Entered.IsZero() {
			v.Duration = humanDuration(time.Since(v.Entered)) + " so far"
		}
		tl = append(tl, v)
	}
	var decisions []decisionView
	for _, d := range st.GetDecisions() {
		what := crisis.Describe(d.GetRequest())
		if g := d.GetRequest().GetGoodOffices(); g != nil {
			what = "good offices: " + optionWords(g.GetOption().Slug()) // the report's word, accent included
		}
		if f := d.GetRequest().GetFundingRequest(); f != nil {
			what = fmt.Sprintf("funding request %s: USD %s from %s for %s", f.GetRequestId(), groupThousands(f.GetAmountUsd()), words(f.GetFund()), f.GetPurpose())
		}
		decisions = append(decisions, decisionView{Number: d.GetNumber(), Kind: d.GetKind(), Principal: d.GetPrincipal(), Why: d.GetRationale(),
			What: what, At: ts(d.GetDecidedAt()), Automatic: d.GetAutomatic()})
	}
	slices.Reverse(decisions)
	var partners []map[string]any
	for _, p := range st.GetPartners() {
		partners = append(partners, map[string]any{"Partner": p.GetPartner(), "Role": words(p.GetRole().Slug()), "By": p.GetPrincipal(), "At": ts(p.GetAcknowledgedAt())})
	}
	var warnings []map[string]any
	for _, wn := range st.GetWarnings() {
		warnings = append(warnings, map[string]any{"Source": wn.GetSource(), "Summary": wn.GetSummary(), "Severity": wn.GetSeverity(), "At": ts(wn.GetObservedAt())})
	}
	funding := fundingOf(st, u)
	var open []fundingView
	for _, f := range funding {
		if f.Status == "awaiting decision" {
			open = append(open, f)
		}
	}
	forms := decisionForms(c.realFunds(r.Context())) // console_decisions.go
	k, _ := extra["Kept"].(*kept)
	if k != nil && k.Kind != "" && k.Is("form-"+k.Kind) {
		if f, ok := forms[k.Kind]; ok {
			f.keep(k)
			forms[k.Kind] = f
			extra["Error"] = f.Error // the fields named by their labels
		}
	}
	if k == nil {
		k = &kept{} // the template asks it of every form
	}
	extra["Kept"] = k
	var follow *followUpView
	if fs := st.GetFollowUp(); fs != nil {
		follow = &followUpView{NextDue: ts(fs.GetNextDueAt()), Done: fs.GetCheckInsDone(), Planned: fs.GetCheckInsPlanned(),
			CheckInKind: "follow-up-check-in"}
		if role, ok := crisis.DecisionRole(follow.CheckInKind); ok {
			follow.CheckInMine, follow.CheckInRoleName = u.Has(role), words(role.Slug())
		}
		for _, p := range st.GetPendingDecisions() {
			if p.GetKind() == follow.CheckInKind {
				follow.CheckInPending = true
			}
		}
	}
	// The kinds taken in any stage and never pending (an engagement, a
	// Security Council action): offered beside what the crisis waits for.
	var anytime []anytimeView
	if st.GetClosedAt() == nil {
		for _, kind := range crisis.AnytimeKinds() {
			if slices.ContainsFunc(st.GetPendingDecisions(), func(p *demarchev1.PendingDecision) bool { return p.GetKind() == kind }) {
				continue
			}
			if role, ok := crisis.DecisionRole(kind); ok {
				anytime = append(anytime, anytimeView{Kind: kind, Mine: u.Has(role), RoleName: words(role.Slug())})
			}
		}
	}
	data := map[string]any{
		"Title": cr.GetTitle(), "Live": "/console/events?crisis=" + url.QueryEscape(cr.GetId()), "FollowUp": follow, "Anytime": anytime,
		"C": cardOf(st, u), "State": st, "Pending": c.withClaims(r, st, pendingOf(st, u), u), "Deadlines": deadlinesOf(st), "Timeline": tl,
		"Decisions": decisions, "Partners": partners, "Warnings": warnings, "Funding": funding, "OpenFunding": open,
		"Key": ids.New(), "Closed": st.GetClosedAt() != nil, "Figures": st.GetFigures(), "Engagements": st.GetEngagements(), "PublicEngagements": st.GetPublicEngagements(), "CouncilActions": st.GetCouncilActions(), "Lessons": st.GetLessons(),
		"Refused": st.GetRefusedSignals(), "OpenedBy": cr.GetOpenedBy(), "Playbook": st.GetPlaybook() + " " + st.GetPlaybookVersion(),
		"Shared": strings.Join(cr.GetSharedWith(), ", "),
		// Early warning's episodes: the situation's page and its previous crisis.
		"Previous": cr.GetPreviousCrisisId(), "SituationKey": demarchev1.SituationKey(cr.GetCountryCode(), cr.GetCrisisType()),
		"Forms":  forms,
		"Stages": demarchev1.StageSlugs()[:6], "CanControl": authz.Allowed(authz.SkipStage, u.Roles), "Controls": consoleControls,
		"CanShare": authz.Allowed(authz.Share, u.Roles),
		// A partner liaison's own organisation's role, acknowledged from the
		// page (the partner-role control); the state it reads is already the
		// partner's view (app.PartnerView).
		"AckPartner": ackPartner(u), "PartnerRoles": partnerRoleChoices, "PartnerView": app.PartnerOnly(u.Principal),
		"Situation": "/console/situations/" + url.PathEscape(cr.GetCountryCode()) + "/" + url.PathEscape(cr.GetCrisisType().Slug()),
	}
	for k, v := range extra {
		data[k] = v
	}
	c.render(w, r, status, "crisis", u, data)
}

// decide records a decision (app.Decide, as the API's decision route); a
// refusal is shown on the page it came from, with the rule.
func (c *console) decide(w http.ResponseWriter, r *http.Request, u *user) {
	id := r.PathValue("id")
	kind := r.PostFormValue("kind")
	req, err := decisionFromForm(kind, r)
	back := r.PostFormValue("back")
	// A refusal goes back to the form's page, the form filled in again
	// (console_forms.go): post/redirect/get.
	page, form := "/console/crises/"+url.PathEscape(id), "form-"+kind
	if kind == "funding-decision" {
		form = "decide-" + r.PostFormValue("request_id")
	}
	if back == "approvals" {
		page, form = "/console/approvals", "approve-"+r.PostFormValue("request_id")
	}
	if err != nil {
		c.refused(w, r, u, page, form, kind, "Not recorded: "+err.Error())
		return
	}
	// The form's hidden key is the request's idempotency key (the API's
	// Idempotency-Key): a form submitted twice records once.
	if _, err := c.s.app.Decide(r.Context(), u.Principal, c.update(r, id), req); err != nil {
		_, msg := refusal(err)
		c.refused(w, r, u, page, form, kind, "Refused — "+kindWords(kind)+" was not recorded: "+msg)
		return
	}
	if back == "approvals" {
		// Back to the inbox the approver was on (post/redirect/get), saying
		// which request was decided: the address names the decision, not
		// the crisis.
		q := url.Values{"done": {kind}, "request": {r.PostFormValue("request_id")}, "crisis": {id}}
		if r.PostFormValue("approve") == "false" {
			q.Set("rejected", "1")
		}
		http.Redirect(w, r, "/console/approvals?"+q.Encode()+"#inbox", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/crises/"+url.PathEscape(id)+"?done="+url.QueryEscape(kind), http.StatusSeeOther)
}

// consoleControls are the Controls panel's choices; none is chosen for the
// person applying one.
var consoleControls = []demarchev1.Choice{
	{Value: "escalate", Words: "escalate (severity +1)"}, {Value: "de-escalate", Words: "de-escalate (severity −1)"},
	{Value: "skip-stage", Words: "skip a stage"}, {Value: "reopen-stage", Words: "reopen a stage"},
}

// anytimeView is a decision kind taken in any stage (crisis.AnytimeKinds):
// its form when the user holds its role.
type anytimeView struct {
	Kind, RoleName string
	Mine           bool
}

// partnerRoleChoices are the roles a partner may acknowledge; none is
// chosen for it.
var partnerRoleChoices = []demarchev1.Choice{
	{Value: "lead", Words: "lead"}, {Value: "support", Words: "support"},
	{Value: "burden-sharing", Words: "burden-sharing"}, {Value: "joint", Words: "joint"}, {Value: "sequential", Words: "sequential"},
}

// ackPartner is the organisation whose role the user may acknowledge from
// the crisis page: its credential's own, "" for a user bound to none.
func ackPartner(u *user) string {
	if u.Partner == "" || !authz.Allowed(authz.PartnerRole, u.Roles) {
		return ""
	}
	return u.Partner
}

// control applies an operator control (app.Control, as the API's control route).
func (c *console) control(w http.ResponseWriter, r *http.Request, u *user) {
	id, name := r.PathValue("id"), r.PostFormValue("control")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	page := "/console/crises/" + url.PathEscape(id)
	var msg proto.Message
	switch name {
	case "escalate", "de-escalate":
		msg = &demarchev1.SeverityControl{Reason: reason}
	case "skip-stage", "reopen-stage":
		if r.PostFormValue("stage") == "" {
			c.refused(w, r, u, page, "form-control", "", "Not applied: Stage: choose the stage to "+words(name)+" (the control was not chosen for you)")
			return
		}
		stage, err := demarchev1.ParseStage(r.PostFormValue("stage"))
		if err != nil {
			c.refused(w, r, u, page, "form-control", "", "Not applied: Stage: "+err.Error())
			return
		}
		msg = &demarchev1.StageControl{Reason: reason, Stage: stage}
	case "partner-role":
		// A partner liaison acknowledges its own organisation's role: the
		// organisation comes from the credential, never from the form (and
		// app.Control refuses another's anyway).
		if u.Partner == "" {
			c.refused(w, r, u, page, "form-partner-role", "", "Not recorded: your credential names no partner organisation; a partner liaison acknowledges its own organisation's role")
			return
		}
		if r.PostFormValue("role") == "" {
			c.refused(w, r, u, page, "form-partner-role", "", "Not recorded: Role: choose the role your organisation takes (none is chosen for you)")
			return
		}
		role, err := demarchev1.ParsePartnerRoleKind(r.PostFormValue("role"))
		if err != nil {
			c.refused(w, r, u, page, "form-partner-role", "", "Not recorded: Role: "+err.Error())
			return
		}
		if _, err := c.s.app.Control(r.Context(), u.Principal, c.update(r, id), name, &demarchev1.PartnerRoleAck{Partner: u.Partner, Role: role}); err != nil {
			_, text := refusal(err)
			c.refused(w, r, u, page, "form-partner-role", "", "Refused — your organisation's role was not recorded: "+text)
			return
		}
		http.Redirect(w, r, page+"?done="+url.QueryEscape(name), http.StatusSeeOther)
		return
	case "":
		c.refused(w, r, u, page, "form-control", "", "Not applied: Control: choose a control (none is chosen for you)")
		return
	default:
		c.refused(w, r, u, page, "form-control", "", fmt.Sprintf("Not applied: Control: %q is not a control", name))
		return
	}
	if _, err := c.s.app.Control(r.Context(), u.Principal, c.update(r, id), name, msg); err != nil {
		_, text := refusal(err)
		c.refused(w, r, u, page, "form-control", "", "Refused — "+strings.ReplaceAll(name, "-", " ")+" was not applied: "+text)
		return
	}
	http.Redirect(w, r, "/console/crises/"+url.PathEscape(id)+"?done="+url.QueryEscape(name), http.StatusSeeOther)
}

// approvals is the funding officer's inbox: requests awaiting a decision in
// the crises the user may see; the user's own requests are marked, since
// four-eyes forbids deciding them.
func (c *console) approvals(w http.ResponseWriter, r *http.Request, u *user) {
	k, msg := c.keptOf(r, u)
	extra := map[string]any{"Error": msg, "Kept": k}
	if q := r.URL.Query(); q.Get("done") == "funding-decision" {
		verb := "Approval"
		if q.Get("rejected") != "" {
			verb = "Rejection"
		}
		extra["Notice"] = verb + " of funding request " + q.Get("request") + " recorded (crisis " + q.Get("crisis") + ")."
	}
	c.renderApprovals(w, r, u, http.StatusOK, extra)
}

func (c *console) renderApprovals(w http.ResponseWriter, r *http.Request, u *user, status int, extra map[string]any) {
	rows, err := c.visibleList(r.Context(), u, crisis.Filter{OpenOnly: true, Stage: demarchev1.Stage_STAGE_RAPID_RESPONSE_FUNDING}, 200)
	if err != nil {
		c.renderError(w, r, u, err)
		return
	}
	var open, decided []fundingView
	all := map[string][]fundingView{}
	for _, st := range c.states(r, u, rows) {
		for _, f := range fundingOf(st, u) {
			all[f.CrisisID] = append(all[f.CrisisID], f)
			if f.Status == "awaiting decision" {
				open = append(open, f)
			} else {
				decided = append(decided, f)
			}
		}
	}
	for i := range open {
		open[i].Waiting = humanDuration(time.Since(open[i].RequestedAt))
	}
	if len(open) > 0 {
		open = c.withFunds(r, u, open, all)
	}
	data := map[string]any{"Title": "Approvals", "Open": open, "Decided": decided, "Live": "/console/events",
		"Approver": u.Has(demarchev1.Role_ROLE_FUNDING_OFFICER)}
	for k, v := range extra {
		data[k] = v
	}
	c.render(w, r, status, "approvals", u, data)
}

// realFunds are the ids of the funds the funding service holds that real
// crises may draw from (drill funds pay drills only): the configured funds,
// not a list of the demo's. None when the service does not answer (the form
// then offers no fund, and says nothing false).
func (c *console) realFunds(ctx context.Context) []string {
	var resp demarchev1.BalanceResponse
	if err := natsrpc.Call(ctx, c.s.nc, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &resp, natsrpc.Timeout(2*time.Second)); err != nil {
		return nil
	}
	var ids []string
	for _, f := range resp.GetFunds() {
		if !f.GetFund().GetDrill() {
			ids = append(ids, f.GetFund().GetId())
		}
	}
	return ids
}
