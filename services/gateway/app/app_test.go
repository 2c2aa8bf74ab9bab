package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// A decision goes through every check whatever the transport: the policy
// table, the kind's role, the principal from the credential, the key, and
// a crisis the principal may see. The crisis and its update are stand-ins
// (WithCrisisStates, WithDecisions); the real stack's tests (TestHTTPAPI,
// TestConsole, TestTrust) run the same checks against Temporal.
func TestDecideChecksWhateverTheTransport(t *testing.T) {
	states := map[string]demarchev1.Confidentiality{
		"GN-1": demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC,
		// Not public: seen only by the cleared, whose read is recorded first.
		"GN-2": demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL,
	}
	type sent struct {
		id, key, principal string
	}
	var got []sent
	a := New(nil, nil, nil,
		WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
			c, ok := states[id]
			if !ok {
				return nil, fmt.Errorf("%w: %s", errs.ErrNotFound, id)
			}
			return &demarchev1.CrisisState{Crisis: &demarchev1.Crisis{Id: id, Confidentiality: c}}, nil
		}),
		WithDecisions(func(_ context.Context, id, key string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
			got = append(got, sent{id, key, req.GetPrincipal()})
			return &demarchev1.DecisionRecord{Kind: req.DecisionKind(), Principal: req.GetPrincipal()}, nil
		}))
	duty := &authn.Principal{Subject: "duty", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}, Clearance: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}
	desk := &authn.Principal{Subject: "desk", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DESK_OFFICER}, Clearance: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}
	analyst := &authn.Principal{Subject: "ana", Roles: []demarchev1.Role{demarchev1.Role_ROLE_ANALYST}}
	triage := func(principal string) *demarchev1.DecisionRequest {
		return &demarchev1.DecisionRequest{Principal: principal, Rationale: "r", Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "credible"}}}
	}
	cases := []struct {
		name string
		p    *authn.Principal
		u    Update
		req  *demarchev1.DecisionRequest
		want error // nil: recorded
		in   string
	}{
		{"recorded, with the form's key", duty, Update{CrisisID: "GN-1", Key: "form-key-1"}, triage(""), nil, ""},
		{"not the policy's", analyst, Update{CrisisID: "GN-1"}, triage(""), errs.ErrForbidden, "crisis.decide"},
		{"not the kind's role", desk, Update{CrisisID: "GN-1"}, triage(""), errs.ErrForbidden, "taken by a duty-officer"},
		{"another principal in the body", duty, Update{CrisisID: "GN-1"}, triage("mallory"), errs.ErrInvalid, "comes from your credential"},
		{"a key with a space", duty, Update{CrisisID: "GN-1", Key: "a b"}, triage(""), errs.ErrInvalid, "Idempotency-Key"},
		{"a key too long", duty, Update{CrisisID: "GN-1", Key: strings.Repeat("k", 201)}, triage(""), errs.ErrInvalid, "at most 200"},
		{"no such crisis", duty, Update{CrisisID: "GN-9"}, triage(""), errs.ErrNotFound, "GN-9"},
		{"not cleared: the same not found", duty, Update{CrisisID: "GN-2"}, triage(""), errs.ErrNotFound, "GN-2"},
	}
	for _, c := range cases {
		got = nil
		rec, err := a.Decide(context.Background(), c.p, c.u, c.req)
		switch {
		case c.want == nil && (err != nil || len(got) != 1 || got[0] != (sent{"GN-1", "form-key-1", "duty"}) || rec.GetPrincipal() != "duty"):
			t.Errorf("%s: %v, sent %+v", c.name, err, got)
		case c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), c.in) || len(got) != 0):
			t.Errorf("%s: %v (sent %+v), want %v naming %q and nothing sent", c.name, err, got, c.want, c.in)
		}
	}
	// No key: a new UUID v7 names the request.
	got = nil
	if _, err := a.Decide(context.Background(), duty, Update{CrisisID: "GN-1"}, triage("")); err != nil || len(got) != 1 {
		t.Fatalf("without a key: %v, sent %+v", err, got)
	} else if u, err := uuid.Parse(got[0].key); err != nil || u.Version() != 7 {
		t.Errorf("the minted key %q is not a UUID v7: %v", got[0].key, err)
	}
}

// Controls: an unknown control is not found, naming the controls to a
// reader; a control's message must be the control's own.
func TestControlArg(t *testing.T) {
	a := New(nil, nil, nil)
	duty := &authn.Principal{Subject: "duty", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}}
	if _, err := a.ControlArg(duty, "explode"); !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), strings.Join(Controls(), ", ")) {
		t.Errorf("unknown control: %v", err)
	}
	if m, err := a.ControlArg(duty, "escalate"); err != nil || m.ProtoReflect().Descriptor().Name() != "SeverityControl" {
		t.Errorf("escalate: %v %T", err, m)
	}
	if _, err := a.Control(context.Background(), duty, Update{CrisisID: "GN-1"}, "escalate", &demarchev1.StageControl{}); !errors.Is(err, errs.ErrInvalid) {
		t.Errorf("escalate with a stage control: %v, want invalid", err)
	}
	for _, name := range Controls() {
		if ControlMessage(name) == nil {
			t.Errorf("%s has no message", name)
		}
	}
}
