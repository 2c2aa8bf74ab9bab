// Package errs is Démarche's one error vocabulary: the sentinel errors every
// service, workflow client and command wraps, and the single mapping from them
// to an HTTP status, a NATS micro error code and a Temporal application-error
// type, and back: what Temporal failed with becomes a sentinel in FromTemporal,
// what a NATS request came back with in FromRPC, a micro code in FromCode.
// Callers match with errors.Is; nobody maps errors to codes anywhere else.
package errs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.temporal.io/api/serviceerror"
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

// ErrTooLarge is returned when a request body or batch is larger than
// allowed; nothing was read. It is a kind of ErrInvalid (code "invalid", and
// errors.Is(err, ErrInvalid) holds), answered 413 over HTTP.
var ErrTooLarge error = &Error{Sentinel: ErrInvalid, Msg: "too large"}

// Temporal application-error types: a workflow or activity raises a refusal
// as a non-retryable application error of its sentinel's type (ToTemporal,
// InvalidInput, RuleViolation), and a caller turns it back into the sentinel
// with FromTemporal. The names are recorded in workflow histories: never
// rename one.
const (
	// TypeInvalidInput: a workflow, update or activity input broke a schema rule (ErrInvalid).
	TypeInvalidInput = "InvalidInput"
	// TypeRuleViolation: a workflow or service rule refused a decision or control (ErrRule).
	TypeRuleViolation = "RuleViolation"
	// TypeForbidden: a service refused the workflow's call for its authority (ErrForbidden).
	TypeForbidden = "Forbidden"
	// TypeNotFound: a service does not know what the call names (ErrNotFound).
	TypeNotFound = "NotFound"
	// TypeConflict: a service holds something else under the call's name (ErrConflict).
	TypeConflict = "Conflict"
)

// mapping is the one table: sentinel, HTTP status, stable code, and the
// Temporal application-error type that carries it across a workflow ("": the
// failure is not final, Temporal retries it). The first row an error matches
// wins, so ErrTooLarge stands before ErrInvalid.
var mapping = []struct {
	err      error
	status   int
	name     string
	temporal string
}{
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "invalid", ""},
	{ErrInvalid, http.StatusBadRequest, "invalid", TypeInvalidInput},
	{ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated", ""},
	{ErrForbidden, http.StatusForbidden, "forbidden", TypeForbidden},
	{ErrNotFound, http.StatusNotFound, "not_found", TypeNotFound},
	{ErrConflict, http.StatusConflict, "conflict", TypeConflict},
	{ErrRule, http.StatusUnprocessableEntity, "rule", TypeRuleViolation},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable", ""},
	{ErrInternal, http.StatusInternalServerError, "internal", ""},
}

// Names lists the stable codes Name answers, each once, in the table's order
// (the OpenAPI document's enum of the error body's code).
func Names() []string {
	var out []string
	for _, m := range mapping {
		if !slices.Contains(out, m.name) {
			out = append(out, m.name)
		}
	}
	return out
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

// ToTemporal is how an activity returns a service's answer: an error matching
// a sentinel that no retry can change (ErrInvalid, ErrForbidden, ErrNotFound,
// ErrConflict, ErrRule) becomes a non-retryable application error of the
// sentinel's type, with the error's message; any other error (unavailable,
// internal, a transport failure) is returned unchanged, so Temporal retries
// it. nil stays nil.
func ToTemporal(err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err // already typed by the code that raised it
	}
	for _, m := range mapping {
		if m.temporal != "" && errors.Is(err, m.err) {
			return temporal.NewNonRetryableApplicationError(err.Error(), m.temporal, err)
		}
	}
	return err
}

// FromTemporal turns what a Temporal call failed with into an error matching
// a sentinel, keeping the original in its chain (errors.As still finds the
// Temporal error):
//   - an application error raised by a workflow or activity (possibly wrapped
//     in update, activity or child-workflow errors) of one of the Type
//     constants: its sentinel, with the application error's message alone;
//   - serviceerror.NotFound (no such workflow, or it is closed): ErrNotFound;
//   - serviceerror.WorkflowExecutionAlreadyStarted: ErrConflict;
//   - the server not answering (Unavailable, DeadlineExceeded,
//     ResourceExhausted, WorkflowNotReady): ErrUnavailable.
//
// Any other error, and nil, is returned unchanged.
func FromTemporal(err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		for _, m := range mapping {
			if m.temporal != "" && appErr.Type() == m.temporal {
				return &Error{Sentinel: m.err, Msg: appErr.Message(), Cause: err}
			}
		}
		return err
	}
	var (
		notFound    *serviceerror.NotFound
		started     *serviceerror.WorkflowExecutionAlreadyStarted
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		exhausted   *serviceerror.ResourceExhausted
		notReady    *serviceerror.WorkflowNotReady
	)
	switch {
	case errors.As(err, &notFound):
		return &Error{Sentinel: ErrNotFound, Msg: err.Error(), Cause: err}
	case errors.As(err, &started):
		return &Error{Sentinel: ErrConflict, Msg: err.Error(), Cause: err}
	case errors.As(err, &unavailable), errors.As(err, &deadline), errors.As(err, &exhausted), errors.As(err, &notReady):
		return &Error{Sentinel: ErrUnavailable, Msg: err.Error(), Cause: err}
	}
	return err
}

// FromRPC turns what a NATS request came back with (nats.Conn.RequestMsg's
// reply and error) into an error matching a sentinel, or nil when the reply
// is an answer:
//   - no responders, or no answer in time: ErrUnavailable (the request may
//     succeed later), naming the subject;
//   - a micro error reply (its Nats-Service-Error-Code header): an *RPCError,
//     matching the sentinel of its code and any service sentinel (Sentinel)
//     its description starts with;
//   - any other transport error, wrapped with the subject.
//
// The NATS error stays in the chain (errors.Is(err, nats.ErrNoResponders)).
func FromRPC(subject string, reply *nats.Msg, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &Error{Sentinel: ErrUnavailable, Cause: err,
			Msg: fmt.Sprintf("%s: no service is answering (is it running? \"demarche dev\" starts the platform): %v", subject, err)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return &Error{Sentinel: ErrUnavailable, Cause: err, Msg: fmt.Sprintf("%s: no answer in time: %v", subject, err)}
	case err != nil:
		return fmt.Errorf("%s: %w", subject, err)
	case reply == nil:
		return &Error{Sentinel: ErrInternal, Msg: subject + ": no reply"}
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		return &RPCError{Subject: subject, Code: code, Description: reply.Header.Get(micro.ErrorHeader)}
	}
	return nil
}

// RPCError is a service's error reply to a NATS request (FromRPC).
type RPCError struct {
	Subject     string
	Code        string
	Description string
}

func (e *RPCError) Error() string { return fmt.Sprintf("%s: %s", e.Subject, e.Description) }

// Unwrap maps the code back to its sentinel (FromCode), and to any service
// sentinel (see Sentinel) whose text starts the description.
func (e *RPCError) Unwrap() []error {
	out := []error{FromCode(e.Code)}
	sentinelsMu.RLock()
	defer sentinelsMu.RUnlock()
	for _, s := range sentinels {
		if strings.HasPrefix(e.Description, s.Error()) {
			out = append(out, s)
		}
	}
	return out
}

var (
	sentinelsMu sync.RWMutex
	sentinels   []error
)

// Sentinel makes a service's own sentinel error: its text is msg, it matches
// code (one of this package's sentinels, which picks the answer's status and
// micro code), and a caller on the other side of NATS matches it with
// errors.Is when the service returned it first in the message:
// fmt.Errorf("%w: ...", ErrUnknownPartner). Make them at package level (var).
func Sentinel(msg string, code error) error {
	e := &Error{Sentinel: code, Msg: msg}
	sentinelsMu.Lock()
	defer sentinelsMu.Unlock()
	sentinels = append(sentinels, e)
	return e
}

// Error is a message that matches a sentinel without repeating its text; its
// Cause, when set, stays matchable too (errors.As finds a Temporal or NATS
// error under it).
type Error struct {
	Sentinel error
	Msg      string
	Cause    error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match the sentinel, and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Sentinel}
	}
	return []error{e.Sentinel, e.Cause}
}
