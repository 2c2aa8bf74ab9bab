package crisis

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/demarche/demarche/pkg/errs"
)

// An update's failure reaches the HTTP API with the status of its kind:
// errs.FromTemporal's one mapping, in the crisis's words.
func TestUpdateErrorsKeepTheirKind(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		says   string
	}{
		{"rule", rule("four-eyes", "alice requested FR-1 and cannot approve or reject it"), http.StatusUnprocessableEntity, "rejected: rule four-eyes: alice requested FR-1"},
		{"invalid input", errs.InvalidInput(errors.New("decision: unknown kind \"x\"")), http.StatusBadRequest, "rejected: decision: unknown kind"},
		{"service conflict", refusedByService("envoy-appointment", appError(temporal.NewNonRetryableApplicationError("roster.reserve: conflict: held", errs.TypeConflict, nil))),
			http.StatusConflict, "rejected: rule service: envoy-appointment refused by its service: roster.reserve: conflict: held"},
		{"service not found", refusedByService("funding-request", appError(temporal.NewNonRetryableApplicationError("funding.request: fund not opened", errs.TypeNotFound, nil))),
			http.StatusNotFound, "rejected: rule service: funding-request refused by its service"},
		{"service forbidden", refusedByService("funding-decision", appError(temporal.NewNonRetryableApplicationError("funding.decide: forbidden", errs.TypeForbidden, nil))),
			http.StatusForbidden, "refused by its service: funding.decide: forbidden"},
		{"service gave up", refusedByService("funding-request", appError(temporal.NewApplicationError("funding.request: no answer in time", "wrapError"))),
			http.StatusUnprocessableEntity, "rule service: funding-request refused by its service: funding.request: no answer in time"},
		{"no crisis", serviceerror.NewNotFound("workflow not found"), http.StatusNotFound, "crisis not found (or already closed): NE-1"},
		{"server down", serviceerror.NewUnavailable("frontend down"), http.StatusServiceUnavailable, "crisis.decide on crisis NE-1: update: frontend down"},
	}
	for _, c := range cases {
		got := updateError("NE-1", UpdateDecide, fmt.Errorf("update: %w", c.err))
		if errs.HTTPStatus(got) != c.status || !strings.Contains(got.Error(), c.says) {
			t.Errorf("%s: %q (status %d), want %d saying %q", c.name, got, errs.HTTPStatus(got), c.status, c.says)
		}
	}
	if got := updateError("NE-1", UpdateDecide, serviceerror.NewNotFound("x")); !errors.Is(got, ErrNotFound) {
		t.Errorf("a crisis not running must be ErrNotFound: %v", got)
	}
}

func appError(err error) *temporal.ApplicationError {
	var appErr *temporal.ApplicationError
	errors.As(err, &appErr)
	return appErr
}
