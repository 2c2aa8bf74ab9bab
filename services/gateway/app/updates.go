package app

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/ids"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Update is what every decision and control names besides its message.
type Update struct {
	CrisisID string
	// Key is the request's idempotency key, the update's id in Temporal:
	// the same key twice is the same request, answered once ("": a new
	// time-ordered UUID v7). The HTTP API takes it from the Idempotency-Key
	// header, the console from its form's hidden key field (one per
	// rendered form, so a double submit records once).
	Key string
	// Via says which request of which transport asks ("POST
	// /v1/crises/X/decisions"): recorded with the read of a restricted
	// crisis the visibility check makes.
	Via string
}

// maxKey bounds an idempotency key.
const maxKey = 200

// Key is the idempotency key a request goes by: key itself when usable, a
// new UUID v7 when empty. A key too long or not printable ASCII is
// errs.ErrInvalid, naming the field Idempotency-Key (the API's header).
func Key(key string) (string, error) {
	if len(key) > maxKey {
		return "", &demarchev1.FieldError{Field: "Idempotency-Key", Reason: fmt.Sprintf("is %d characters long (allowed: at most %d)", len(key), maxKey)}
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return "", &demarchev1.FieldError{Field: "Idempotency-Key", Reason: "must be printable ASCII without spaces"}
		}
	}
	if key == "" {
		key = ids.New()
	}
	return key, nil
}

// prepare checks what every decision and control needs before it reaches
// the crisis: a usable key, and a crisis the principal may see (the same
// errs.ErrNotFound as a missing one otherwise).
func (a *App) prepare(ctx context.Context, p *authn.Principal, u Update) (string, error) {
	key, _, err := a.prepareState(ctx, p, u)
	return key, err
}

// prepareState is prepare, answering the crisis's state as p reads it too.
func (a *App) prepareState(ctx context.Context, p *authn.Principal, u Update) (string, *demarchev1.CrisisState, error) {
	key, err := Key(u.Key)
	if err != nil {
		return "", nil, err
	}
	st, err := a.Crisis(ctx, p, CrisisQuery{ID: u.CrisisID, Via: u.Via})
	if err != nil {
		return "", nil, err
	}
	return key, st, nil
}

// orNone is s, or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Decide records a decision in a crisis: the crisis.decide action, the role
// the decision kind is taken by, the principal and its roles stamped in,
// generated ids filled; the crisis's workflow then applies its own rules
// (four-eyes, stage running, ...). Errors: errs.ErrForbidden,
// errs.ErrInvalid, errs.ErrNotFound, errs.ErrRule (naming the rule),
// errs.ErrConflict, errs.ErrUnavailable.
func (a *App) Decide(ctx context.Context, p *authn.Principal, u Update, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
	if err := a.allow(authz.Decide, p, "decide"); err != nil {
		return nil, err
	}
	if req == nil {
		req = &demarchev1.DecisionRequest{}
	}
	if err := Stamp(req, p); err != nil {
		return nil, err
	}
	kind := req.DecisionKind()
	if role, ok := crisis.DecisionRole(kind); ok && !p.Has(role) {
		return nil, fmt.Errorf("%w: a %s decision is taken by a %s", errs.ErrForbidden, kind, role.Slug())
	}
	if err := a.checkRosterIDs(ctx, req); err != nil { // rosterids.go
		return nil, err
	}
	req.FillGenerated(ids.New) // ids the client may leave out (a funding request's): UUID v7
	key, st, err := a.prepareState(ctx, p, u)
	if err != nil {
		return nil, err
	}
	if req.GetFieldReport() != nil {
		// The crisis checks it again (rule lead-presence); here it is a 403.
		if lead := st.GetCrisis().GetLeadPresence(); lead == "" || lead != p.Presence {
			return nil, fmt.Errorf("%w: a field report is filed by a field officer of the crisis's lead presence (%s); your credential names %s",
				errs.ErrForbidden, orNone(lead), orNone(p.Presence))
		}
	}
	if a.decisions != nil {
		return a.decisions(ctx, u.CrisisID, key, req)
	}
	return crisis.Decide(ctx, a.tc, u.CrisisID, key, req)
}

// controls are the operator controls, named as their updates
// (crisis.UpdateEscalate is "crisis.escalate") and as their actions in the
// policy table, with the message each takes.
var controls = map[string]func() proto.Message{
	crisis.UpdateEscalate:    func() proto.Message { return &demarchev1.SeverityControl{} },
	crisis.UpdateDeEscalate:  func() proto.Message { return &demarchev1.SeverityControl{} },
	crisis.UpdateSkipStage:   func() proto.Message { return &demarchev1.StageControl{} },
	crisis.UpdateReopenStage: func() proto.Message { return &demarchev1.StageControl{} },
	crisis.UpdatePartnerRole: func() proto.Message { return &demarchev1.PartnerRoleAck{} },
	crisis.UpdateWarn:        func() proto.Message { return &demarchev1.WarnControl{} },
	crisis.UpdateComment:     func() proto.Message { return &demarchev1.CommentControl{} },
}

// Controls are the names of the operator controls ("escalate",
// "skip-stage", ...), sorted.
func Controls() []string {
	var out []string
	for name := range controls {
		out = append(out, strings.TrimPrefix(name, "crisis."))
	}
	sort.Strings(out)
	return out
}

// ControlMessage is a new, empty message of the control named name
// ("escalate"), nil when there is no such control: for what describes the
// controls (the OpenAPI document), with no check of who asks.
func ControlMessage(name string) proto.Message {
	if newArg, ok := controls["crisis."+name]; ok {
		return newArg()
	}
	return nil
}

// ControlArg is a new, empty message of the control named name ("escalate"):
// what a transport decodes the control's body into. A control that does not
// exist is errs.ErrNotFound (naming the controls to a principal who may read
// crises); one p may not apply is errs.ErrForbidden.
func (a *App) ControlArg(p *authn.Principal, name string) (proto.Message, error) {
	newArg, ok := controls["crisis."+name]
	if !ok && authz.Check(authz.ReadCrises, p) == nil {
		return nil, fmt.Errorf("%w: no control %q (controls: %s)", errs.ErrNotFound, truncate(name, 40), strings.Join(Controls(), ", "))
	}
	if !ok {
		return nil, fmt.Errorf("%w: no such control", errs.ErrNotFound)
	}
	if err := a.allow(authz.Action("crisis."+name), p, "control"); err != nil {
		return nil, err
	}
	return newArg(), nil
}

// Control applies an operator control (name as in Controls) with its
// message (of ControlArg's type) to a crisis, answering the crisis's state
// after it: the control's own action, the principal stamped in, a warning's
// source the sender's, a partner's role acknowledged by its own liaison only.
// Errors as Decide's.
func (a *App) Control(ctx context.Context, p *authn.Principal, u Update, name string, arg proto.Message) (*demarchev1.CrisisState, error) {
	want, err := a.ControlArg(p, name)
	if err != nil {
		return nil, err
	}
	if arg == nil || arg.ProtoReflect().Descriptor() != want.ProtoReflect().Descriptor() {
		return nil, &demarchev1.FieldError{Field: "control", Reason: fmt.Sprintf("%s takes a %s", name, want.ProtoReflect().Descriptor().FullName())}
	}
	if err := Stamp(arg, p); err != nil {
		return nil, err
	}
	if wc, ok := arg.(*demarchev1.WarnControl); ok && wc.GetWarning() != nil {
		// A warning attached by hand is a signal too: the sender's.
		if err := StampSource("warning.source", &wc.Warning.Source, p); err != nil {
			return nil, err
		}
	}
	if ack, ok := arg.(*demarchev1.PartnerRoleAck); ok && PartnerOnly(p) && ack.GetPartner() != p.Partner {
		return nil, fmt.Errorf("%w: %s may record the role of %s only", errs.ErrForbidden, p.Subject, p.Partner)
	}
	key, err := a.prepare(ctx, p, u)
	if err != nil {
		return nil, err
	}
	var st *demarchev1.CrisisState
	if a.controls != nil {
		st, err = a.controls(ctx, u.CrisisID, key, "crisis."+name, arg)
	} else {
		st, err = crisis.Control(ctx, a.tc, u.CrisisID, key, "crisis."+name, arg.(demarchev1.Validator))
	}
	if err != nil {
		return nil, err
	}
	return forPrincipal(st, p), nil // a partner's acknowledgement answers the partner's view
}

// Share changes which partner organisations a crisis is shared with, and
// answers its state after the change: the crisis.share action; organisation
// names in any case; every organisation named must be in the partners
// registry (errs.ErrInvalid naming the field otherwise); the crisis refuses a
// change that changes nothing (errs.ErrRule). Errors as Decide's.
func (a *App) Share(ctx context.Context, p *authn.Principal, u Update, change *demarchev1.SharingControl) (*demarchev1.CrisisState, error) {
	if err := a.allow(authz.Share, p, "share"); err != nil {
		return nil, err
	}
	if change == nil {
		change = &demarchev1.SharingControl{}
	}
	if err := Stamp(change, p); err != nil {
		return nil, err
	}
	for i, v := range change.Share { // as crisis open takes them: any case
		change.Share[i] = strings.ToUpper(strings.TrimSpace(v))
	}
	for i, v := range change.Unshare {
		change.Unshare[i] = strings.ToUpper(strings.TrimSpace(v))
	}
	if err := change.Validate(); err != nil {
		return nil, err
	}
	if err := a.checkPartnerNames(ctx, "share", change.GetShare()); err != nil {
		return nil, err
	}
	key, err := a.prepare(ctx, p, u)
	if err != nil {
		return nil, err
	}
	st, err := crisis.Control(ctx, a.tc, u.CrisisID, key, crisis.UpdateShare, change)
	if err != nil {
		return nil, err
	}
	return forPrincipal(st, p), nil
}

// Stamp puts the authenticated principal, its roles and its field presence
// in a request (its principal, roles and presence fields, when it has
// them). A principal or presence named in the body must be the credential's
// own (errs.ErrInvalid otherwise).
func Stamp(m proto.Message, p *authn.Principal) error {
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	if f := fields.ByName("principal"); f != nil {
		if named := msg.Get(f).String(); named != "" && named != p.Subject {
			return &demarchev1.FieldError{Field: "principal", Reason: "comes from your credential; leave it empty"}
		}
		msg.Set(f, protoreflect.ValueOfString(p.Subject))
	}
	if f := fields.ByName("presence"); f != nil {
		if named := msg.Get(f).String(); named != "" && named != p.Presence {
			return &demarchev1.FieldError{Field: "presence", Reason: "comes from your credential's presence claim; leave it empty"}
		}
		msg.Set(f, protoreflect.ValueOfString(p.Presence))
	}
	if f := fields.ByName("roles"); f != nil {
		list := msg.NewField(f).List()
		for _, r := range p.Roles {
			list.Append(protoreflect.ValueOfEnum(r.Number()))
		}
		msg.Set(f, protoreflect.ValueOfList(list))
	}
	return nil
}

// StampSource sets a signal's source (the field named field) to the
// principal's (demarchev1.PersonSource), refusing one that names another
// with errs.ErrForbidden, naming the rule.
func StampSource(field string, source *string, p *authn.Principal) error {
	own := demarchev1.PersonSource(p.Subject)
	switch claimed := *source; claimed {
	case "":
		*source = own
	case own:
	default:
		return &errs.Error{Sentinel: errs.ErrForbidden, Msg: fmt.Sprintf(
			"%s: %q refused: a signal's source is who sends it, never its body: yours is %q (leave source out, or send that); a source's own system publishes on demarche.signals.<source> with its own credential",
			field, truncate(claimed, 40), own)}
	}
	return nil
}
