package crisis

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// decisionType is everything about one kind of decision, in one place: the
// stage files (warning.go, goodoffices.go, factfinding.go, envoy.go,
// funding.go, followup.go, closure.go) each declare theirs, and the engine
// (lifecycle.go, this file) only walks the table.
type decisionType struct {
	// kind is the decision's one name: the DecisionRequest oneof field in
	// kebab case, shared by the workflow, the CLI verb, HTTP and events.
	kind string
	// stage must be running for the decision to be taken (STAGE_CLOSED: the
	// crisis must be ready to close), unless adds or opensFrom says otherwise.
	stage demarchev1.Stage
	// adds: the decision adds a run of its stage beside the playbook's phases,
	// whatever runs (refused while one runs): a playbook is a default, not a
	// cage (¶48 "configured to the needs on the ground").
	adds bool
	// opensFrom: when the stage is not running, the decision opens a run of it
	// beside the phases, once this earlier stage has been reached
	// (STAGE_UNSPECIFIED: never). Rapid funding is asked for as soon as it is
	// needed, not after the stage before it in the playbook.
	opensFrom demarchev1.Stage
	// anytime: the decision belongs to no stage run and is taken whatever
	// runs (its check says when it applies); stage only files it.
	anytime bool
	// role may take the decision; who says it in words for pending lists.
	role demarchev1.Role
	who  string
	// describe says what a decision of this kind decided, in a line (the
	// auditors' decision trail).
	describe func(*demarchev1.DecisionRequest) string
	// check refuses a decision that does not fit the state (nil: only the
	// stage-running rule). It reads, never writes.
	check func(d *decisionCtx) error
	// call reaches a service before the decision is recorded (nil: none); a
	// refusal fails the decision and records nothing.
	call func(ctx workflow.Context, d *decisionCtx) error
	// apply changes the state once the decision is recorded and says what
	// follows for the stage.
	apply func(d *decisionCtx) effect
	// pending says what the stage run waits for of this kind (nil or empty:
	// nothing). An empty who keeps the type's who.
	pending func(l *lifecycle, r *stageRun) []waiting
	// drill is the decision the drill policy takes (the engine fills in the
	// drill principal and rationale unless set).
	drill func(ctx workflow.Context, d *decisionCtx) (*demarchev1.DecisionRequest, error)
}

// decisionCtx is one decision in hand: the crisis, the stage run it belongs
// to (nil for closure), the request, and when.
type decisionCtx struct {
	l   *lifecycle
	run *stageRun
	req *demarchev1.DecisionRequest
	rec *demarchev1.DecisionRecord // set once recorded (apply)
	now time.Time
	// id is the decision's id (DecisionRecord.decision_id), known before its
	// service call: the service checks the call against it (authority.go).
	id string
	// opens: run is a new run of the decision's stage, not yet in the crisis;
	// the decision enters it, beside the phases, once its service agreed.
	opens bool
	// answer is what the decision's service call answered, for apply (the
	// funding service's record of a filed request carries its quorum).
	answer any
}

// effect is what a recorded decision means for its stage.
type effect int

const (
	stageContinues  effect = iota // the stage keeps waiting
	stageCompleted                // the decision ends the stage
	toStageWorkflow               // the stage's child workflow acts on it
)

// waiting is one pending decision of a stage run.
type waiting struct {
	who string
	due *timestamppb.Timestamp
	// A funding-decision's request and quorum (PendingDecision's fields).
	requestID string
	approvers []string
	required  int32
}

// decisionTypes is the table, in the schema's order: each stage file adds
// its types (var x = decisionKind(&decisionType{...})) and init orders them
// as DecisionRequest's oneof does. A test checks that every kind of the
// schema is here exactly once; a new kind is its message and its stage file.
var decisionTypes []*decisionType

// decisionKind adds a decision type to the table.
func decisionKind(dt *decisionType) *decisionType {
	decisionTypes = append(decisionTypes, dt)
	return dt
}

func init() {
	order := map[string]int{}
	for i, k := range demarchev1.DecisionKinds() {
		order[k] = i + 1
	}
	sort.SliceStable(decisionTypes, func(i, j int) bool { return order[decisionTypes[i].kind] < order[decisionTypes[j].kind] })
}

func decisionTypeOf(kind string) *decisionType {
	for _, dt := range decisionTypes {
		if dt.kind == kind {
			return dt
		}
	}
	return nil
}

// Describe says what a decision decided, in a line.
func Describe(r *demarchev1.DecisionRequest) string {
	if dt := decisionTypeOf(r.DecisionKind()); dt != nil {
		return dt.describe(r)
	}
	return r.DecisionKind()
}

// rule is a refusal naming the rule that failed.
func rule(name, format string, args ...any) error {
	return errs.RuleViolation(fmt.Sprintf("rule %s: %s", name, fmt.Sprintf(format, args...)), nil)
}

// refusedByService is the decision's failure when its service refused the
// call: the rule "service", keeping the kind of the refusal (errs.ToTemporal's
// type: a booked envoy stays a conflict, a fund the service lacks stays not
// found) so the person who decided gets its status; a refusal of no such kind
// (the service failed until the activity gave up) is a rule violation, as
// before. Only the update's answer changes with the kind: the workflow does
// the same either way.
func refusedByService(kind string, appErr *temporal.ApplicationError) error {
	msg := fmt.Sprintf("rule service: %s refused by its service: %s", kind, appErr.Message())
	switch t := appErr.Type(); t {
	case errs.TypeInvalidInput, errs.TypeForbidden, errs.TypeNotFound, errs.TypeConflict:
		return temporal.NewNonRetryableApplicationError(msg, t, nil)
	}
	return errs.RuleViolation(msg, nil)
}

// validateUpdate is the decide update's validator: a person's decision is
// named by its update id, the drill policy's auto-<n> (authority.go), so one
// may not take the other's name; then validateDecision.
func (l *lifecycle) validateUpdate(ctx workflow.Context, req *demarchev1.DecisionRequest) error {
	if info := workflow.GetCurrentUpdateInfo(ctx); info != nil && strings.HasPrefix(info.ID, autoPrefix) {
		return rule("decision-id", "a decision's request id (Idempotency-Key) may not begin with %q: the drill policy's decisions are named so", autoPrefix)
	}
	return l.validateDecision(ctx, req)
}

// validateDecision is the update validator: it reads state, never changes it,
// and a rejection leaves no trace in the history.
func (l *lifecycle) validateDecision(ctx workflow.Context, req *demarchev1.DecisionRequest) error {
	if err := req.Validate(); err != nil {
		return errs.InvalidInput(err)
	}
	if l.closure != nil {
		return rule("open-crisis", "the crisis is closed; no decision can be added")
	}
	d, err := l.decisionFor(ctx, req)
	if err != nil {
		return err
	}
	dt := decisionTypeOf(req.DecisionKind())
	if !slices.Contains(req.GetRoles(), dt.role) {
		return rule("role", "a %s decision is taken by a %s; %s holds %s", dt.kind, dt.role.Slug(), req.GetPrincipal(), roleList(req.GetRoles()))
	}
	if d.run != nil && d.run.inFlight != "" {
		return rule("one-at-a-time", "a %s decision is being recorded for %s; try again in a moment", d.run.inFlight, d.run.rec.GetStage().Slug())
	}
	if (d.opens || d.run == nil) && l.outside != nil {
		return rule("one-at-a-time", "a %s decision is being recorded; try again in a moment", l.outside.GetKind())
	}
	if dt.check != nil {
		return dt.check(d)
	}
	return nil
}

func roleList(roles []demarchev1.Role) string {
	if len(roles) == 0 {
		return "no role"
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.Slug()
	}
	return strings.Join(names, ", ")
}

// decisionFor finds the decision's type and the stage run it belongs to.
func (l *lifecycle) decisionFor(ctx workflow.Context, req *demarchev1.DecisionRequest) (*decisionCtx, error) {
	kind := req.DecisionKind()
	dt := decisionTypeOf(kind)
	if dt == nil {
		return nil, errs.InvalidInput(fmt.Errorf("decision: unknown kind %q", kind))
	}
	d := &decisionCtx{l: l, req: req, now: workflow.Now(ctx)}
	if dt.stage == demarchev1.Stage_STAGE_CLOSED || dt.anytime {
		return d, nil
	}
	d.run = l.activeRun(dt.stage)
	switch {
	case dt.adds && d.run != nil:
		return nil, rule("one-run", "a %s stage is running already (run %d): take its decisions there", dt.stage.Slug(), d.run.rec.GetRun())
	case d.run == nil && (dt.adds || dt.opensFrom != demarchev1.Stage_STAGE_UNSPECIFIED) && l.markedSkipped(dt.stage):
		return nil, rule("skipped-ahead", "stage %s is marked to be skipped (%s); a %s decision cannot open it", dt.stage.Slug(), l.skipped[dt.stage], kind)
	case dt.adds, d.run == nil && dt.opensFrom != demarchev1.Stage_STAGE_UNSPECIFIED && l.reached[dt.opensFrom]:
		// A run to be: the rules read its (empty) state; decide enters it.
		d.run, d.opens = newStageRun(&demarchev1.StageRecord{Stage: dt.stage, Status: demarchev1.StageStatus_STAGE_STATUS_RUNNING}, l.specOf(dt.stage), nil), true
	case d.run == nil && dt.opensFrom != demarchev1.Stage_STAGE_UNSPECIFIED:
		return nil, rule("stage-running", "a %s decision needs the %s stage running, or the %s stage reached to open it (running: %s)", kind, dt.stage.Slug(), dt.opensFrom.Slug(), l.activeList())
	case d.run == nil:
		return nil, rule("stage-running", "a %s decision needs the %s stage running (running: %s)", kind, dt.stage.Slug(), l.activeList())
	}
	return d, nil
}

// markedSkipped says whether an operator marked the stage to be skipped
// when its phase comes.
func (l *lifecycle) markedSkipped(stage demarchev1.Stage) bool {
	_, ok := l.skipped[stage]
	return ok
}

// decide records a validated decision: the service call first (a refusal
// records nothing), then the state (so the next validator sees it), the
// event, and what follows for the stage.
func (l *lifecycle) decide(ctx workflow.Context, req *demarchev1.DecisionRequest, automatic bool) (*demarchev1.DecisionRecord, error) {
	d, err := l.decisionFor(ctx, req)
	if err != nil {
		return nil, err
	}
	dt := decisionTypeOf(req.DecisionKind())
	d.id = l.decisionID(ctx, automatic)
	if dt.call != nil {
		// The service asks the crisis (the authority query) whether this
		// decision is being carried out: it is, in flight, until recorded.
		inFlight := &demarchev1.DecisionRecord{Kind: dt.kind, Stage: dt.stage, Principal: req.GetPrincipal(),
			Request: req, Automatic: automatic, DecisionId: d.id}
		if d.opens || d.run == nil {
			l.outside = inFlight // no run of the crisis holds it (yet)
		} else {
			d.run.inFlight, d.run.inFlightRec = dt.kind, inFlight
		}
		err := dt.call(ctx, d)
		if d.opens || d.run == nil {
			l.outside = nil
		} else {
			d.run.inFlight, d.run.inFlightRec = "", nil
		}
		if err != nil {
			var appErr *temporal.ApplicationError
			if errors.As(err, &appErr) {
				return nil, refusedByService(dt.kind, appErr)
			}
			return nil, fmt.Errorf("%s: %w", dt.kind, err)
		}
	}
	if d.opens {
		// The stage enters (its event first) beside the phases, and the
		// decision is the run's first.
		d.run = l.enter(ctx, l.specOf(dt.stage), "")
		d.run.beside = true
		if err := l.launch(ctx, d.run); err != nil {
			return nil, fmt.Errorf("%s: open the %s stage: %w", dt.kind, dt.stage.Slug(), err)
		}
	}
	d.now = workflow.Now(ctx)
	d.rec = &demarchev1.DecisionRecord{
		Number: int32(len(l.decisions) + 1), Kind: dt.kind, Stage: dt.stage, Principal: req.GetPrincipal(),
		Rationale: req.GetRationale(), DecidedAt: timestamppb.New(d.now), Request: req, Automatic: automatic,
		DecisionId: d.id,
	}
	l.decisions = append(l.decisions, d.rec)
	then := dt.apply(d)
	if err := l.em.publish(ctx, &demarchev1.DecisionRecorded{CrisisId: l.crisis.GetId(), Decision: d.rec}); err != nil {
		return nil, err
	}
	switch run := d.run; then {
	case stageCompleted:
		if run.rec.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			l.finish(ctx, run, demarchev1.StageStatus_STAGE_STATUS_COMPLETED, "")
		}
	case toStageWorkflow:
		// What the stage's workflow does with the decision follows the
		// decision on the stream.
		l.em.flush(ctx)
		if err := run.signal(ctx, SignalStageDecision, d.rec); err != nil {
			return nil, fmt.Errorf("%s: forward to %s: %w", dt.kind, run.childID, err)
		}
	}
	return d.rec, nil
}

// pendingDecisions lists what the crisis waits for, in stage order.
func (l *lifecycle) pendingDecisions() []*demarchev1.PendingDecision {
	var out []*demarchev1.PendingDecision
	add := func(dt *decisionType, r *stageRun) {
		for _, w := range dt.pending(l, r) {
			who := w.who
			if who == "" {
				who = dt.who
			}
			out = append(out, &demarchev1.PendingDecision{Kind: dt.kind, Stage: dt.stage, Who: who, Role: dt.role, DueAt: w.due,
				RequestId: w.requestID, Approvers: w.approvers, ApprovalsRequired: w.required})
		}
	}
	for _, r := range l.active {
		if r.rec.GetStatus() != demarchev1.StageStatus_STAGE_STATUS_RUNNING {
			continue
		}
		for _, dt := range decisionTypes {
			if dt.stage == r.rec.GetStage() {
				add(dt, r)
			}
		}
	}
	add(closure, nil)
	return out
}

// runDrillPolicy takes each pending decision after the drill's delay, as a
// principal named drill-policy (drill-approver for approvals: four-eyes holds
// in drills too).
func (l *lifecycle) runDrillPolicy(ctx workflow.Context) {
	delay := l.drill.GetStageDuration().AsDuration()
	for {
		if err := workflow.Await(ctx, func() bool { return l.closure != nil || len(l.pendingDecisions()) > 0 }); err != nil || l.closure != nil {
			return
		}
		if err := workflow.Sleep(ctx, delay); err != nil {
			return
		}
		pending := l.pendingDecisions()
		if len(pending) == 0 {
			continue
		}
		kind := pending[0].GetKind()
		dt := decisionTypeOf(kind)
		d := &decisionCtx{l: l, run: l.activeRun(dt.stage), now: workflow.Now(ctx)}
		req, err := dt.drill(ctx, d)
		if err != nil {
			workflow.GetLogger(ctx).Warn("drill: no decision to take", "kind", kind, "error", err)
			continue
		}
		if req.Principal == "" {
			req.Principal = "drill-policy"
		}
		req.Roles = []demarchev1.Role{dt.role}
		req.Rationale = "drill: taken automatically by the drill policy"
		if err := l.validateDecision(ctx, req); err != nil {
			workflow.GetLogger(ctx).Warn("drill decision rejected", "kind", kind, "error", err)
			continue
		}
		l.cont.busy++ // not a handler: the crisis waits for it before continuing as new
		if _, err := l.decide(ctx, req, true); err != nil {
			workflow.GetLogger(ctx).Warn("drill decision failed", "kind", kind, "error", err)
		}
		l.cont.busy--
	}
}

// stageDue is the stage run's decision deadline, if it has one.
func stageDue(_ *lifecycle, r *stageRun) []waiting {
	return []waiting{{due: r.deadline.GetDueAt()}}
}

// AnytimeKinds are the kinds taken whatever stage runs and never waited for
// (engagement, council-action, ...): surfaces offer them beside the pending
// decisions, in the schema's order.
func AnytimeKinds() []string {
	var out []string
	for _, dt := range decisionTypes {
		if dt.anytime {
			out = append(out, dt.kind)
		}
	}
	return out
}

// DecisionRole is the role that takes decisions of a kind (false: no such kind).
func DecisionRole(kind string) (demarchev1.Role, bool) {
	if dt := decisionTypeOf(kind); dt != nil {
		return dt.role, true
	}
	return demarchev1.Role_ROLE_UNSPECIFIED, false
}
