package errs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func TestOneMappingForStatusCodeAndTemporal(t *testing.T) {
	verr := &demarchev1.ValidationError{Message: "crisis", Fields: []*demarchev1.FieldError{{Field: "severity", Reason: "9 is out of range"}}}
	cases := []struct {
		name   string
		err    error
		status int
	}{
		{"validation", verr, http.StatusBadRequest},
		{"wrapped invalid", fmt.Errorf("open: %w", ErrInvalid), http.StatusBadRequest},
		{"unauthenticated", fmt.Errorf("%w: expired", ErrUnauthenticated), http.StatusUnauthorized},
		{"forbidden", fmt.Errorf("%w: not cleared", ErrForbidden), http.StatusForbidden},
		{"not found", fmt.Errorf("%w: crisis X", ErrNotFound), http.StatusNotFound},
		{"conflict", fmt.Errorf("%w: open", ErrConflict), http.StatusConflict},
		{"rule", fmt.Errorf("%w: four-eyes", ErrRule), http.StatusUnprocessableEntity},
		{"unavailable", fmt.Errorf("%w: stopping", ErrUnavailable), http.StatusServiceUnavailable},
		{"no responders", fmt.Errorf("x: %w", nats.ErrNoResponders), http.StatusServiceUnavailable},
		{"other", errors.New("boom"), http.StatusInternalServerError},
	}
	for _, c := range cases {
		if got := HTTPStatus(c.err); got != c.status {
			t.Errorf("%s: status %d, want %d", c.name, got, c.status)
		}
		if back := FromCode(Code(c.err)); HTTPStatus(back) != c.status {
			t.Errorf("%s: code %s maps back to %v", c.name, Code(c.err), back)
		}
	}
	if FromCode("not-a-code") != ErrInternal || FromCode("418") != ErrInternal {
		t.Error("unknown codes must be internal errors")
	}
}

func TestFromTemporalKeepsTheRuleMessage(t *testing.T) {
	err := fmt.Errorf("update: %w", RuleViolation("rule four-eyes: alice requested FR-1", nil))
	got := FromTemporal(err)
	if !errors.Is(got, ErrRule) || got.Error() != "rule four-eyes: alice requested FR-1" {
		t.Fatalf("got %v", got)
	}
	if got := FromTemporal(InvalidInput(errors.New("severity: 9"))); !errors.Is(got, ErrInvalid) {
		t.Fatalf("invalid input maps to %v", got)
	}
	other := temporal.NewApplicationError("x", "Other")
	if FromTemporal(other) != other {
		t.Fatal("other application errors pass unchanged")
	}
}

func TestTooLargeIsInvalidAnswered413(t *testing.T) {
	err := fmt.Errorf("body: %w", ErrTooLarge)
	if HTTPStatus(err) != http.StatusRequestEntityTooLarge || Name(err) != "invalid" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("too large: status %d, name %s, invalid %t", HTTPStatus(err), Name(err), errors.Is(err, ErrInvalid))
	}
	if FromCode("413") != ErrTooLarge || Name(ErrInvalid) != "invalid" || HTTPStatus(ErrInvalid) != http.StatusBadRequest {
		t.Fatal("413 must map back to ErrTooLarge, 400 stays ErrInvalid")
	}
	if !slices.Equal(Names(), []string{"invalid", "unauthenticated", "forbidden", "not_found", "conflict", "rule", "unavailable", "internal"}) {
		t.Fatalf("names %v", Names())
	}
}

// The application-error types are recorded in workflow histories: a renamed
// one would make a recorded refusal unreadable.
func TestTemporalTypesAreStable(t *testing.T) {
	for got, want := range map[string]string{TypeInvalidInput: "InvalidInput", TypeRuleViolation: "RuleViolation",
		TypeForbidden: "Forbidden", TypeNotFound: "NotFound", TypeConflict: "Conflict"} {
		if got != want {
			t.Errorf("type %q renamed to %q", want, got)
		}
	}
}

func TestFromTemporal(t *testing.T) {
	notFound := serviceerror.NewNotFound("workflow not found for ID: crisis-NE-1")
	cases := []struct {
		name   string
		err    error
		want   error // nil: returned unchanged
		status int
		msg    string
	}{
		{"rule", fmt.Errorf("update: %w", RuleViolation("rule four-eyes: alice requested FR-1", nil)), ErrRule, 422, "rule four-eyes: alice requested FR-1"},
		{"invalid input", fmt.Errorf("update: %w", InvalidInput(errors.New("severity: 9 is out of range"))), ErrInvalid, 400, "severity: 9 is out of range"},
		{"forbidden", temporal.NewNonRetryableApplicationError("roster: not a decision of this crisis", TypeForbidden, nil), ErrForbidden, 403, "roster: not a decision of this crisis"},
		{"not found", temporal.NewNonRetryableApplicationError("funding: fund not opened", TypeNotFound, nil), ErrNotFound, 404, "funding: fund not opened"},
		{"conflict", temporal.NewNonRetryableApplicationError("roster: envoy held elsewhere", TypeConflict, nil), ErrConflict, 409, "roster: envoy held elsewhere"},
		{"no workflow", fmt.Errorf("query: %w", notFound), ErrNotFound, 404, "query: workflow not found for ID: crisis-NE-1"},
		{"started", serviceerror.NewWorkflowExecutionAlreadyStarted("started", "", ""), ErrConflict, 409, "started"},
		{"server unavailable", serviceerror.NewUnavailable("frontend down"), ErrUnavailable, 503, "frontend down"},
		{"server deadline", serviceerror.NewDeadlineExceeded("slow"), ErrUnavailable, 503, "slow"},
		{"workflow not ready", serviceerror.NewWorkflowNotReady("busy"), ErrUnavailable, 503, "busy"},
		{"other application error", temporal.NewApplicationError("x", "Other"), nil, 500, "x"},
		{"other error", errors.New("boom"), nil, 500, "boom"},
	}
	for _, c := range cases {
		got := FromTemporal(c.err)
		if c.want == nil {
			if got != c.err {
				t.Errorf("%s: %v changed to %v", c.name, c.err, got)
			}
			continue
		}
		if !errors.Is(got, c.want) || HTTPStatus(got) != c.status || got.Error() != c.msg {
			t.Errorf("%s: %v (status %d), want %v (%d) %q", c.name, got, HTTPStatus(got), c.want, c.status, c.msg)
		}
	}
	var nf *serviceerror.NotFound
	if !errors.As(FromTemporal(notFound), &nf) {
		t.Error("the Temporal error must stay in the chain")
	}
	if FromTemporal(nil) != nil {
		t.Error("nil must stay nil")
	}
}

// ToTemporal then FromTemporal is the path of a service's refusal through an
// activity to the workflow's caller: every final sentinel survives it, and
// nothing else becomes final.
func TestToTemporalRoundTrip(t *testing.T) {
	for _, c := range []struct {
		err   error
		typ   string
		final bool
	}{
		{fmt.Errorf("funding.request: %w: amount", ErrInvalid), TypeInvalidInput, true},
		{&demarchev1.ValidationError{Message: "call", Fields: []*demarchev1.FieldError{{Field: "amount", Reason: "must be positive"}}}, TypeInvalidInput, true},
		{fmt.Errorf("roster.reserve: %w: not this crisis's decision", ErrForbidden), TypeForbidden, true},
		{fmt.Errorf("funding.decide: %w: FR-9", ErrNotFound), TypeNotFound, true},
		{fmt.Errorf("roster.reserve: %w: booked elsewhere", ErrConflict), TypeConflict, true},
		{fmt.Errorf("funding.decide: %w: four-eyes", ErrRule), TypeRuleViolation, true},
		{fmt.Errorf("funding: %w", ErrTooLarge), TypeInvalidInput, true},
		{fmt.Errorf("roster: %w: stopping", ErrUnavailable), "", false},
		{fmt.Errorf("x: %w", nats.ErrNoResponders), "", false},
		{fmt.Errorf("roster: %w: bug", ErrInternal), "", false},
		{errors.New("boom"), "", false},
	} {
		out := ToTemporal(c.err)
		var appErr *temporal.ApplicationError
		isApp := errors.As(out, &appErr)
		if isApp != c.final || c.final && (appErr.Type() != c.typ || !appErr.NonRetryable() || appErr.Message() != c.err.Error()) {
			t.Errorf("%v: ToTemporal gave %v (application error %t), want final %t of type %q", c.err, out, isApp, c.final, c.typ)
			continue
		}
		if !c.final {
			if out != c.err {
				t.Errorf("%v: a retryable error must pass unchanged, got %v", c.err, out)
			}
			continue
		}
		back := FromTemporal(fmt.Errorf("update decide: %w", out))
		if HTTPStatus(back) != HTTPStatus(c.err) && !errors.Is(c.err, ErrTooLarge) || back.Error() != c.err.Error() {
			t.Errorf("%v: back as %v (status %d), want status %d", c.err, back, HTTPStatus(back), HTTPStatus(c.err))
		}
	}
	typed := RuleViolation("rule x", nil)
	if ToTemporal(typed) != typed || ToTemporal(nil) != nil {
		t.Error("an application error already typed, and nil, pass unchanged")
	}
}

func TestFromRPC(t *testing.T) {
	answer := nats.NewMsg("_INBOX.x")
	answer.Data = []byte(`{}`)
	refusal := func(code, desc string) *nats.Msg {
		m := nats.NewMsg("_INBOX.x")
		m.Header.Set(micro.ErrorCodeHeader, code)
		m.Header.Set(micro.ErrorHeader, desc)
		return m
	}
	errUnknownPartner := Sentinel("test: unknown partner", ErrNotFound)
	cases := []struct {
		name   string
		reply  *nats.Msg
		err    error
		want   []error
		status int
	}{
		{"answer", answer, nil, nil, http.StatusOK},
		{"no responders", nil, nats.ErrNoResponders, []error{ErrUnavailable, nats.ErrNoResponders}, 503},
		{"nats timeout", nil, nats.ErrTimeout, []error{ErrUnavailable, nats.ErrTimeout}, 503},
		{"deadline", nil, fmt.Errorf("wait: %w", context.DeadlineExceeded), []error{ErrUnavailable, context.DeadlineExceeded}, 503},
		{"connection closed", nil, nats.ErrConnectionClosed, []error{nats.ErrConnectionClosed}, 500},
		{"400", refusal("400", "invalid input: amount"), nil, []error{ErrInvalid}, 400},
		{"403", refusal("403", "not this crisis's decision"), nil, []error{ErrForbidden}, 403},
		{"404 of a service sentinel", refusal("404", "test: unknown partner: XY"), nil, []error{ErrNotFound, errUnknownPartner}, 404},
		{"409", refusal("409", "booked elsewhere"), nil, []error{ErrConflict}, 409},
		{"413", refusal("413", "batch too large"), nil, []error{ErrTooLarge, ErrInvalid}, 413},
		{"422", refusal("422", "rule four-eyes"), nil, []error{ErrRule}, 422},
		{"503", refusal("503", "stopping"), nil, []error{ErrUnavailable}, 503},
		{"500", refusal("500", "boom"), nil, []error{ErrInternal}, 500},
		{"unknown code", refusal("418", "teapot"), nil, []error{ErrInternal}, 500},
	}
	for _, c := range cases {
		got := FromRPC("demarche.test.call", c.reply, c.err)
		if c.want == nil {
			if got != nil {
				t.Errorf("%s: %v, want nil", c.name, got)
			}
			continue
		}
		for _, w := range c.want {
			if !errors.Is(got, w) {
				t.Errorf("%s: %v does not match %v", c.name, got, w)
			}
		}
		if HTTPStatus(got) != c.status || !strings.Contains(got.Error(), "demarche.test.call") {
			t.Errorf("%s: %v: status %d, want %d, naming the subject", c.name, got, HTTPStatus(got), c.status)
		}
	}
	if err := FromRPC("s", refusal("404", "other: x"), nil); errors.Is(err, errUnknownPartner) {
		t.Error("a service sentinel matches only a description it starts")
	}
}
