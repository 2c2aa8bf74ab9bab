package errs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
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
