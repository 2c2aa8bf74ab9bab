// Package errs is Démarche's one error vocabulary: the sentinel errors every
// service, workflow client and command wraps, and the single mapping from them
// to an HTTP status, a NATS micro error code and a Temporal application-error
// type. Callers match with errors.Is; nobody maps errors to codes anywhere else.
package errs

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/temporal"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Sentinels. Wrap one with fmt.Errorf("%w: ...", errs.ErrX) to choose how the
// failure is answered everywhere.
var (
	// ErrInvalid is returned when an input breaks a rule of its schema (which
	// field, why, what is allowed); nothing was changed. It is the schema's own
	// sentinel, so every *demarchev1.ValidationError matches it.
	ErrInvalid = demarchev1.ErrInvalid
	// ErrUnauthenticated is returned when a request carries no credential, or
	// one that is expired, wrongly signed or for another audience.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden is returned when the caller may not do what it asked.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound is returned when the thing named does not exist (or the
	// caller may not know it exists).
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when the thing exists already or was changed
	// concurrently (an open crisis, a held booking).
	ErrConflict = errors.New("conflict")
	// ErrRule is returned when a domain rule refuses a well-formed request
	// (four-eyes, stage not running, fund short); the message names the rule.
	ErrRule = errors.New("rule violation")
	// ErrUnavailable is returned when a backend is not answering or is
	// stopping; the same request may succeed later.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal is returned for anything else: a bug or an unexpected failure.
	ErrInternal = errors.New("internal error")
)

// Temporal application-error types raised by workflows and activities; a
// caller turns them back into sentinels with FromTemporal.
const (
	// TypeInvalidInput: a workflow, update or activity input broke a schema rule.
	TypeInvalidInput = "InvalidInput"
	// TypeRuleViolation: a workflow or service rule refused a decision or control.
	TypeRuleViolation = "RuleViolation"
)

// mapping is the one table: sentinel, HTTP status, micro code.
var mapping = []struct {
	err    error
	status int
	name   string
}{
	{ErrInvalid, http.StatusBadRequest, "invalid"},
	{ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{ErrForbidden, http.StatusForbidden, "forbidden"},
	{ErrNotFound, http.StatusNotFound, "not_found"},
	{ErrConflict, http.StatusConflict, "conflict"},
	{ErrRule, http.StatusUnprocessableEntity, "rule"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{ErrInternal, http.StatusInternalServerError, "internal"},
}

// Name is an error's stable code for API clients ("invalid", "rule", ...),
// the same for every error of one status.
func Name(err error) string {
	st := HTTPStatus(err)
	for _, m := range mapping {
		if m.status == st {
			return m.name
		}
	}
	return "internal"
}

// HTTPStatus is the status an error is answered with. Transport failures that
// mean "not answering" (no NATS responders, a deadline) are 503.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	for _, m := range mapping {
		if errors.Is(err, m.err) {
			return m.status
		}
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Code is the NATS micro error code of an error: its HTTP status as text, so
// `nats req` users and HTTP users read the same numbers.
func Code(err error) string { return strconv.Itoa(HTTPStatus(err)) }

// FromCode is the sentinel of a micro error code (ErrInternal when unknown).
func FromCode(code string) error {
	n, err := strconv.Atoi(code)
	if err != nil {
		return ErrInternal
	}
	for _, m := range mapping {
		if m.status == n {
			return m.err
		}
	}
	return ErrInternal
}

// Temporal application errors carrying a sentinel's type.

// InvalidInput is a non-retryable application error of TypeInvalidInput.
func InvalidInput(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), TypeInvalidInput, err)
}

// RuleViolation is a non-retryable application error of TypeRuleViolation.
func RuleViolation(msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, TypeRuleViolation, cause)
}

// FromTemporal turns an application error raised by a workflow or activity
// (possibly wrapped in update, activity or child-workflow errors) into an
// error matching ErrInvalid or ErrRule, with the application error's message;
// any other error is returned unchanged.
func FromTemporal(err error) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return err
	}
	switch appErr.Type() {
	case TypeInvalidInput:
		return &Error{Sentinel: ErrInvalid, Msg: appErr.Message()}
	case TypeRuleViolation:
		return &Error{Sentinel: ErrRule, Msg: appErr.Message()}
	}
	return err
}

// Error is a message that matches a sentinel without repeating its text.
type Error struct {
	Sentinel error
	Msg      string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match the sentinel.
func (e *Error) Unwrap() error { return e.Sentinel }
