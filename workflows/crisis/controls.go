package crisis

// Operator controls (flexibility: ¶48 "configured to the needs on the ground";
// ¶49 "remain flexible"): escalate or de-escalate, skip or reopen a stage,
// record a partner's role, attach a warning, share, comment. Each is an update whose validator
// refuses a control that cannot apply, naming the rule, before anything is
// written. What machines send (early warning, partners, a stage's workflow)
// arrives as signals; an invalid one is refused and the refusal kept in the
// crisis state.

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// validated is a control's argument: a message with input rules.
type validated interface {
	proto.Message
	Validate() error
}

// actor is a control's argument: who acts, with which roles.
type actor interface {
	validated
	GetPrincipal() string
	GetRoles() []demarchev1.Role
}

// control registers one control update: input rules, an open crisis, then
// check; apply runs only for a control that passed, and the answer is the
// crisis's state after it.
func control[T actor](ctx workflow.Context, l *lifecycle, name string, check func(T) error, apply func(workflow.Context, T)) error {
	err := workflow.SetUpdateHandlerWithOptions(ctx, name,
		func(ctx workflow.Context, arg T) (*demarchev1.CrisisState, error) {
			apply(ctx, arg)
			return l.snapshot(ctx), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, arg T) error {
			if err := arg.Validate(); err != nil {
				return errs.InvalidInput(err)
			}
			if !authz.Allowed(authz.Action(name), arg.GetRoles()) {
				return rule("role", "%s is for a %s; %s holds %s", name, roleList(authz.Roles(authz.Action(name))), arg.GetPrincipal(), roleList(arg.GetRoles()))
			}
			if l.closure != nil {
				return rule("open-crisis", "the crisis is closed; controls no longer apply")
			}
			if check == nil {
				return nil
			}
			return check(arg)
		}})
	if err != nil {
		return fmt.Errorf("register update %s: %w", name, err)
	}
	return nil
}

func (l *lifecycle) registerControls(ctx workflow.Context) error {
	severity := func(delta int32) (func(*demarchev1.SeverityControl) error, func(workflow.Context, *demarchev1.SeverityControl)) {
		return func(*demarchev1.SeverityControl) error {
				if to := l.crisis.GetSeverity() + delta; to < 1 || to > 5 {
					return rule("severity-bounds", "severity is %d already (allowed: 1 to 5)", l.crisis.GetSeverity())
				}
				return nil
			}, func(ctx workflow.Context, c *demarchev1.SeverityControl) {
				l.changeSeverity(ctx, delta, c.GetPrincipal(), c.GetReason())
			}
	}
	upCheck, up := severity(+1)
	downCheck, down := severity(-1)
	for _, err := range []error{
		control(ctx, l, UpdateEscalate, upCheck, up),
		control(ctx, l, UpdateDeEscalate, downCheck, down),
		control(ctx, l, UpdateSkipStage, l.checkSkip, l.skip),
		control(ctx, l, UpdateReopenStage, l.checkReopen, func(ctx workflow.Context, c *demarchev1.StageControl) {
			l.reopenStage(ctx, c.GetStage(), c.GetPrincipal(), c.GetReason())
		}),
		control(ctx, l, UpdatePartnerRole, nil, l.setPartner),
		control(ctx, l, UpdateWarn, nil, func(ctx workflow.Context, w *demarchev1.WarnControl) { l.attachWarning(ctx, w.GetWarning()) }),
		control(ctx, l, UpdateShare, l.checkSharing, l.share),
		// A handler only: histories that never receive a comment emit the
		// same commands as before (v0.1.0 replays unchanged).
		control(ctx, l, UpdateComment, nil, l.comment),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkInPlaybook refuses a stage the crisis's playbook does not run and no
// decision added to it.
func (l *lifecycle) checkInPlaybook(s demarchev1.Stage) error {
	if l.spec(s) != nil || l.reached[s] {
		return nil
	}
	var stages []string
	for _, ph := range l.pb.GetPhases() {
		for _, sp := range ph.GetStages() {
			stages = append(stages, sp.GetStage().Slug())
		}
	}
	return rule("in-playbook", "stage %s is not in playbook %s (its stages: %s)", s.Slug(), l.pb.GetName(), strings.Join(stages, ", "))
}

func (l *lifecycle) checkSkip(c *demarchev1.StageControl) error {
	s := c.GetStage()
	if err := l.checkInPlaybook(s); err != nil {
		return err
	}
	if l.activeRun(s) != nil {
		return nil
	}
	if l.reached[s] {
		return rule("skip-running-or-ahead", "stage %s has already ended; nothing to skip", s.Slug())
	}
	if _, ok := l.skipped[s]; ok {
		return rule("skip-once", "stage %s is already to be skipped", s.Slug())
	}
	return nil
}

func (l *lifecycle) checkReopen(c *demarchev1.StageControl) error {
	s := c.GetStage()
	if err := l.checkInPlaybook(s); err != nil {
		return err
	}
	if l.activeRun(s) != nil {
		return rule("reopen-ended", "stage %s is running; nothing to reopen", s.Slug())
	}
	if !l.reached[s] {
		return rule("reopen-reached", "stage %s has not run yet in this crisis (playbook %s)", s.Slug(), l.pb.GetName())
	}
	return nil
}

// checkSharing refuses a change that changes nothing: sharing with an
// organisation the crisis is shared with already, or unsharing one it is not.
// (Whether each organisation is registered, the gateway asks the partners
// registry before the update; a workflow validator does no I/O.)
func (l *lifecycle) checkSharing(c *demarchev1.SharingControl) error {
	shared := l.crisis.GetSharedWith()
	for _, p := range c.GetShare() {
		if slices.Contains(shared, p) {
			return rule("share-new", "the crisis is shared with %s already", p)
		}
	}
	for _, p := range c.GetUnshare() {
		if !slices.Contains(shared, p) {
			return rule("unshare-shared", "the crisis is not shared with %s (shared with: %s)", p, listOrNone(shared))
		}
	}
	if n := len(shared) + len(c.GetShare()) - len(c.GetUnshare()); n > demarchev1.MaxSharedWith {
		return rule("share-bound", "the crisis would be shared with %d organisations (allowed: at most %d)", n, demarchev1.MaxSharedWith)
	}
	return nil
}

// share applies a sharing change: the crisis's list (kept in the order
// organisations were added), its search attributes (what the API's lists
// filter partners by) and the event the partners service and the audit
// chain act on.
func (l *lifecycle) share(ctx workflow.Context, c *demarchev1.SharingControl) {
	var after []string
	for _, p := range l.crisis.GetSharedWith() {
		if !slices.Contains(c.GetUnshare(), p) {
			after = append(after, p)
		}
	}
	after = append(after, c.GetShare()...)
	l.crisis.SharedWith = after
	l.crisisChanged(ctx, &demarchev1.SharingChanged{CrisisId: l.crisis.GetId(), SharedWith: after,
		Added: c.GetShare(), Removed: c.GetUnshare(), Principal: c.GetPrincipal(), Reason: c.GetReason()})
}

// comment keeps a person's comment on the crisis's timeline and publishes
// it for the audit chain; it changes nothing in how the crisis runs.
func (l *lifecycle) comment(ctx workflow.Context, c *demarchev1.CommentControl) {
	cm := &demarchev1.Comment{Principal: c.GetPrincipal(), Text: c.GetText(), At: timestamppb.New(workflow.Now(ctx))}
	l.comments = append(l.comments, cm)
	l.em.publishOrLog(ctx, &demarchev1.CommentAdded{CrisisId: l.crisis.GetId(), Comment: cm})
}

// crisisChanged follows a change to the crisis itself (severity, sharing):
// its search attributes, which the API's lists filter on, then its event.
// Neither error can be returned (publishOrLog says why); an upsert fails only
// for attributes the SDK cannot encode, a workflow bug too, and is logged.
func (l *lifecycle) crisisChanged(ctx workflow.Context, ev proto.Message) {
	if err := upsertCrisisAttributes(ctx, l.crisis); err != nil {
		workflow.GetLogger(ctx).Error("crisis search attributes not updated", "crisis_id", l.crisis.GetId(), "error", err)
	}
	l.em.publishOrLog(ctx, ev)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (l *lifecycle) changeSeverity(ctx workflow.Context, delta int32, principal, reason string) {
	from := l.crisis.GetSeverity()
	to := min(max(from+delta, 1), 5)
	if to == from {
		return // a relapse at severity 5: nothing to raise
	}
	l.crisis.Severity = to
	l.crisisChanged(ctx, &demarchev1.SeverityChanged{CrisisId: l.crisis.GetId(), From: from, To: to, Principal: principal, Reason: reason})
}

// skip ends a running stage now, or marks one ahead to be passed over.
func (l *lifecycle) skip(ctx workflow.Context, c *demarchev1.StageControl) {
	stage := c.GetStage()
	if run := l.activeRun(stage); run != nil {
		l.finish(ctx, run, demarchev1.StageStatus_STAGE_STATUS_SKIPPED, c.GetReason())
	} else {
		l.skipped[stage] = c.GetReason()
	}
	l.em.publishOrLog(ctx, &demarchev1.StageSkipped{CrisisId: l.crisis.GetId(), Stage: stage, Principal: c.GetPrincipal(), Reason: c.GetReason()})
}

// reopenStage runs a stage that ended again; it does nothing for a stage
// checkReopen would refuse (a relapse reopens good offices only if it ran).
func (l *lifecycle) reopenStage(ctx workflow.Context, stage demarchev1.Stage, principal, reason string) {
	if l.closure != nil || l.checkReopen(&demarchev1.StageControl{Stage: stage}) != nil {
		return
	}
	// The run enters before the event goes out, so a second reopen in the
	// same moment is refused by checkReopen.
	run := l.enter(ctx, l.specOf(stage), reason)
	l.em.publishOrLog(ctx, &demarchev1.StageReopened{CrisisId: l.crisis.GetId(), Stage: stage, Principal: principal, Reason: reason})
	if err := l.launch(ctx, run); err != nil {
		workflow.GetLogger(ctx).Error("reopen failed", "stage", stage.Slug(), "error", err)
	}
}

func (l *lifecycle) setPartner(ctx workflow.Context, a *demarchev1.PartnerRoleAck) {
	if a.AcknowledgedAt == nil {
		a.AcknowledgedAt = timestamppb.New(workflow.Now(ctx))
	}
	replaced := false
	for i, p := range l.partners {
		if p.GetPartner() == a.GetPartner() {
			l.partners[i], replaced = a, true
		}
	}
	if !replaced {
		l.partners = append(l.partners, a)
	}
	l.em.publishOrLog(ctx, &demarchev1.PartnerRoleAcknowledged{CrisisId: l.crisis.GetId(), Ack: a})
}

// attachWarning keeps a new warning; during follow-up the stage's workflow
// judges whether it is a relapse.
//
// While the crisis is in its warning stage its severity follows the score:
// a warning whose situation's score calls for a higher severity
// (score_severity, set by early warning) raises it, with SeverityChanged
// like an escalation. It never lowers it: that is a person's decision.
// Histories recorded before (v0.1.0) replay without it (GetVersion).
func (l *lifecycle) attachWarning(ctx workflow.Context, w *demarchev1.Warning) {
	l.warnings = append(l.warnings, w)
	l.em.publishOrLog(ctx, &demarchev1.WarningAttached{CrisisId: l.crisis.GetId(), Warning: w})
	if to := w.GetScoreSeverity(); to > l.crisis.GetSeverity() && to <= 5 && l.activeRun(demarchev1.Stage_STAGE_WARNING) != nil &&
		workflow.GetVersion(ctx, VersionSeverityFollowsScore, workflow.DefaultVersion, 1) >= 1 {
		l.changeSeverity(ctx, to-l.crisis.GetSeverity(), w.GetSource(),
			fmt.Sprintf("severity follows the score in the warning stage: early warning's score calls for %d (%s)", to, firstRunes(w.GetSummary(), 200)))
	}
	if r := l.activeRun(demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP); r != nil && (r.child != nil || r.external) {
		// The warning is kept whatever happens; only the follow-up's relapse
		// judgement misses it (its workflow ended or failed meanwhile).
		if err := r.signal(ctx, SignalStageWarning, w); err != nil {
			workflow.GetLogger(ctx).Warn("warning not forwarded to the follow-up workflow", "child", r.childID, "error", err)
		}
	}
}

// relapse re-escalates: one severity level up and good offices again.
func (l *lifecycle) relapse(ctx workflow.Context, r *demarchev1.CrisisRelapsed) {
	l.em.publishOrLog(ctx, &demarchev1.CrisisRelapsed{CrisisId: l.crisis.GetId(), Reason: r.GetReason()})
	l.changeSeverity(ctx, +1, "follow-up", r.GetReason())
	l.reopenStage(ctx, demarchev1.Stage_STAGE_GOOD_OFFICES, "follow-up", r.GetReason())
}

// recordDeadline keeps the latest state of a child's deadline.
func (l *lifecycle) recordDeadline(_ workflow.Context, r *demarchev1.DeadlineReport) {
	d := r.GetDeadline()
	for i, x := range l.deadlines {
		if x.GetName() == d.GetName() && x.GetStage() == d.GetStage() && x.GetStartedAt().AsTime().Equal(d.GetStartedAt().AsTime()) {
			l.deadlines[i] = d
			return
		}
	}
	l.deadlines = append(l.deadlines, d)
}

func (l *lifecycle) checkInDue(_ workflow.Context, d *demarchev1.CheckInDue) {
	if r := l.activeRun(demarchev1.Stage_STAGE_SUSTAINED_FOLLOW_UP); r != nil && d.GetNumber() > followUpOf(r).due {
		followUpOf(r).due = d.GetNumber()
	}
}

// refuse keeps a refused signal in the state (and the log), so an operator
// or auditor sees what a machine sent that the crisis did not take.
func (l *lifecycle) refuse(ctx workflow.Context, signal string, err error) {
	workflow.GetLogger(ctx).Warn("signal refused", "signal", signal, "error", err)
	l.refused = append(l.refused, &demarchev1.RefusedSignal{Signal: signal, Reason: err.Error(), At: timestamppb.New(workflow.Now(ctx))})
}

// onSignal adds a signal to the selector: decoded, validated (a refusal is
// kept), and handled only when valid and the crisis is still open.
func onSignal[T any, PT interface {
	*T
	validated
}](ctx workflow.Context, l *lifecycle, sel workflow.Selector, name string, handle func(workflow.Context, PT)) {
	take := func(ctx workflow.Context, arg PT) {
		l.cont.busy++
		defer func() { l.cont.busy-- }()
		switch err := arg.Validate(); {
		case err != nil:
			l.refuse(ctx, name, err)
		case l.closure != nil:
			l.refuse(ctx, name, fmt.Errorf("rule open-crisis: the crisis is closed"))
		default:
			handle(ctx, arg)
		}
	}
	ch := workflow.GetSignalChannel(ctx, name)
	sel.AddReceive(ch, func(ch workflow.ReceiveChannel, _ bool) {
		arg := PT(new(T))
		ch.Receive(ctx, arg)
		if l.cont.handingOver { // applied by the next run, so the hand-over is not held up
			l.deferSignal(ctx, name, arg)
			return
		}
		take(ctx, arg)
	})
	// Before continuing as new, signals already delivered are handed over.
	l.cont.drainers = append(l.cont.drainers, func(ctx workflow.Context) bool {
		arg := PT(new(T))
		if !ch.ReceiveAsync(arg) {
			return false
		}
		l.deferSignal(ctx, name, arg)
		return true
	})
	// A signal an earlier run handed over.
	l.cont.takers[name] = func(ctx workflow.Context, a *anypb.Any) {
		arg := PT(new(T))
		if err := a.UnmarshalTo(arg); err != nil {
			l.refuse(ctx, name, fmt.Errorf("handed over from an earlier run, undecodable: %w", err))
			return
		}
		take(ctx, arg)
	}
}

// serveSignals applies what machines send, one at a time.
func (l *lifecycle) serveSignals(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	onSignal(ctx, l, sel, SignalWarning, l.attachWarning)
	onSignal(ctx, l, sel, SignalPartnerAck, l.setPartner)
	onSignal(ctx, l, sel, SignalRelapse, l.relapse)
	onSignal(ctx, l, sel, SignalDeadline, l.recordDeadline)
	onSignal(ctx, l, sel, SignalCheckInDue, l.checkInDue)
	onSignal(ctx, l, sel, SignalStageOutcome, l.stageDone)
	// First what an earlier run received and handed over, in its order; what
	// is left when this run hands over in turn goes on to the next.
	for len(l.cont.handedOver) > 0 && !l.cont.handingOver {
		d := l.cont.handedOver[0]
		l.cont.handedOver = l.cont.handedOver[1:]
		if take, ok := l.cont.takers[d.GetName()]; ok {
			take(ctx, d.GetArg())
		}
	}
	// Until the run hands over: a selector holds a signal it has picked until
	// its callback runs, so it must stop before the run continues as new
	// (continueasnew.go), or that signal would be lost.
	stop := false
	sel.AddReceive(l.cont.handOver, func(ch workflow.ReceiveChannel, _ bool) {
		ch.Receive(ctx, nil)
		stop = true
	})
	for !stop {
		sel.Select(ctx)
	}
	l.cont.signalsStopped = true
}

// firstRunes is s cut to n runes, with an ellipsis when cut.
func firstRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
