package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/authz"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/playbook"
)

// Opened is a crisis just opened.
type Opened struct {
	// State is the crisis's state read back from its workflow when Settled;
	// otherwise the crisis as it was opened (the workflow started but did
	// not answer within a few seconds).
	State   *demarchev1.CrisisState
	Settled bool
}

// OpenCrisis opens a crisis. A real crisis needs the crisis.open action, a
// drill crisis.open-drill (and its drill settings); the playbook comes from
// the registry (by type, or by name for a head of department); the opener is
// the principal; the id is minted here (a drill may be named: its id is then
// DRILL-<opener's tag>-<name>). Errors: errs.ErrForbidden (role, clearance
// for the crisis's confidentiality), errs.ErrInvalid (naming the field),
// errs.ErrConflict (a drill's id is taken), errs.ErrUnavailable.
func (a *App) OpenCrisis(ctx context.Context, p *authn.Principal, req *demarchev1.OpenCrisisRequest) (Opened, error) {
	c := req.GetCrisis()
	drill := req.GetDrill() != nil || c.GetDrill()
	action := authz.OpenCrisis
	if drill {
		action = authz.OpenDrill
	}
	if err := a.allow(action, p, "open crisis"); err != nil {
		return Opened{}, err
	}
	if c == nil {
		return Opened{}, &demarchev1.ValidationError{Message: "crisis", Fields: []*demarchev1.FieldError{{Field: "crisis", Reason: "is required"}}}
	}
	if c.GetOpenedBy() != "" && c.GetOpenedBy() != p.Subject {
		return Opened{}, &demarchev1.FieldError{Field: "crisis.opened_by", Reason: "comes from your credential; leave it empty"}
	}
	if drill && req.GetDrill() == nil {
		return Opened{}, &demarchev1.FieldError{Field: "drill", Reason: "is required for a drill (decision_delay, time_scale)"}
	}
	if err := a.checkPartnerNames(ctx, "crisis.shared_with", c.GetSharedWith()); err != nil {
		return Opened{}, err
	}
	// Crisis ids are the platform's: a real crisis's is minted here; a
	// drill may be given a name, and its id is then the drill form
	// DRILL-<opener's tag>-<name>, which no real id can take and which
	// lives in the opener's own namespace (so no answer here can tell
	// whether a crisis someone else opened exists).
	chosen := strings.TrimSpace(c.GetId())
	id := ""
	if chosen != "" {
		if !drill {
			return Opened{}, &demarchev1.FieldError{Field: "crisis.id", Reason: "is minted by the platform for a real crisis (e.g. GN-20261127-K7Q3P): leave it empty; a chosen name is for drills only (their ids are " + crisis.DrillIDPrefix + "<your tag>-<name>)"}
		}
		var err error
		if id, err = crisis.DrillID(p.Subject, chosen); err != nil {
			return Opened{}, &demarchev1.FieldError{Field: "crisis.id", Reason: err.Error()}
		}
	}
	params := crisis.NewCrisisParams{
		ID: id, Title: c.GetTitle(), CountryCode: c.GetCountryCode(), CrisisType: c.GetCrisisType(),
		Severity: c.GetSeverity(), Confidentiality: c.GetConfidentiality(), OpenedBy: p.Subject,
		Drill: drill, SharedWith: c.GetSharedWith(), LeadPresence: strings.ToUpper(strings.TrimSpace(c.GetLeadPresence())),
	}

	if c.FirstSignalAt != nil {
		params.FirstSignalAt = c.GetFirstSignalAt().AsTime()
	}
	req.Crisis = crisis.NewCrisis(params, time.Now())
	if err := req.Validate(); err != nil {
		return Opened{}, err
	}
	if lp := req.Crisis.GetLeadPresence(); lp != "" {
		if _, err := a.presences.Lead(lp, req.Crisis.GetCountryCode()); err != nil {
			return Opened{}, &demarchev1.FieldError{Field: "crisis.lead_presence", Reason: err.Error()}
		}
	}
	if !authz.CanSee(p, req.Crisis.GetConfidentiality(), req.Crisis.GetSharedWith(), req.Crisis.GetLeadPresence()) {
		return Opened{}, fmt.Errorf("%w: your clearance (%s) does not cover a %s crisis", errs.ErrForbidden, p.Clearance.Slug(), req.Crisis.GetConfidentiality().Slug())
	}
	in := &demarchev1.CrisisWorkflowInput{Crisis: req.Crisis}
	if name := req.GetPlaybook(); name != "" {
		if err := a.allow(authz.ChoosePlaybook, p, "open crisis"); err != nil {
			return Opened{}, err
		}
		var err error
		if in.Playbook, err = playbook.Get(name); err != nil {
			return Opened{}, &demarchev1.FieldError{Field: "playbook", Reason: err.Error()}
		}
	}
	if d := req.GetDrill(); d != nil {
		in.DrillPolicy = &demarchev1.DrillPolicy{StageDuration: d.GetDecisionDelay(), TimeScale: d.GetTimeScale()}
	}
	for attempt := 1; ; attempt++ {
		_, err := crisis.Open(ctx, a.tc, in)
		if errors.Is(err, crisis.ErrAlreadyOpen) && id == "" && attempt < 3 {
			// A minted id met one minted before (five random characters
			// per country and day): mint another.
			in.Crisis.Id = crisis.NewCrisisID(in.GetCrisis().GetCountryCode(), time.Now())
			continue
		}
		if errors.Is(err, crisis.ErrAlreadyOpen) {
			// The same answer whoever holds the id, open or closed,
			// visible to the caller or not: an id names one crisis, ever.
			err = fmt.Errorf("%w: crisis id %s is taken (ids are never reused, a closed crisis's included); choose another name", errs.ErrConflict, in.GetCrisis().GetId())
		}
		if err != nil {
			return Opened{}, err
		}
		break
	}
	st, err := a.waitState(ctx, in.GetCrisis().GetId())
	if err != nil {
		return Opened{State: &demarchev1.CrisisState{Crisis: in.GetCrisis()}}, nil
	}
	return Opened{State: st, Settled: true}, nil
}

// waitState asks a just-started crisis for its state, briefly.
func (a *App) waitState(ctx context.Context, id string) (*demarchev1.CrisisState, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		st, err := a.crisisState(ctx, id)
		if err == nil {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkPartnerNames refuses a list (the field named field) naming an
// organisation the partners registry does not know.
func (a *App) checkPartnerNames(ctx context.Context, field string, shared []string) error {
	if len(shared) == 0 {
		return nil
	}
	var reg demarchev1.ListPartnersResponse
	if err := natsrpc.Call(ctx, a.nc, natsrpc.PartnersList, &demarchev1.ListPartnersRequest{}, &reg); err != nil {
		return err
	}
	var known []string
	for _, pi := range reg.GetPartners() {
		known = append(known, pi.GetName())
	}
	for i, name := range shared {
		if !slices.Contains(known, name) {
			return &demarchev1.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%q is not a registered partner (known: %s)", truncate(name, 40), strings.Join(known, ", "))}
		}
	}
	return nil
}
