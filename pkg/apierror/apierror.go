// Package apierror is the HTTP API's error body in one place: the gateway
// writes it (Write), and the clients of the API, the CLI and the console, read
// it back (Parse) as an error that matches the errs sentinel of its status.
//
//	{"error": "what went wrong, for people", "code": "invalid", "fields": [{"field": "crisis.severity", "reason": "..."}]}
//
// The status and the code come from errs (the one table); "fields" is there
// for bad input only.
package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Body is the JSON error body of every API answer that is not a success.
type Body struct {
	Error  string  `json:"error"`
	Code   string  `json:"code"`
	Fields []Field `json:"fields,omitempty"`
}

// Field is one input field that broke a rule, and why (what is allowed).
type Field struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Of is the status and body an error is answered with: errs.HTTPStatus and
// errs.Name, and each failing field of a validation error.
func Of(err error) (int, Body) {
	b := Body{Error: err.Error(), Code: errs.Name(err)}
	var verr *demarchev1.ValidationError
	var ferr *demarchev1.FieldError
	switch {
	case errors.As(err, &verr):
		for _, f := range verr.Fields {
			b.Fields = append(b.Fields, Field{Field: f.Field, Reason: f.Reason})
		}
	case errors.As(err, &ferr):
		b.Fields = []Field{{Field: ferr.Field, Reason: ferr.Reason}}
	}
	return errs.HTTPStatus(err), b
}

// Write answers an error: its status, and its body in JSON.
func Write(w http.ResponseWriter, err error) {
	status, body := Of(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the status is sent: a failed write means the client went away, no one is left to tell
}

// Error is an error answer of the API, read back by a client. It matches the
// errs sentinel of its status (errors.Is(err, errs.ErrRule) for a 422), and,
// when the answer listed fields, a *demarchev1.ValidationError of them.
type Error struct {
	Status int
	Msg    string // the answer's "error" ("" when the body was not the API's)
	Fields []*demarchev1.FieldError
}

// Error is the answer's message, with the failing fields when the message
// does not already name them; the status line when the body said nothing.
func (e *Error) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	if len(e.Fields) == 0 || strings.Contains(msg, e.Fields[0].Reason) {
		return msg
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return msg + " (" + strings.Join(parts, "; ") + ")"
}

// Unwrap is the sentinel of the status (errs.FromCode), and the fields as a
// validation error of the request.
func (e *Error) Unwrap() []error {
	out := []error{errs.FromCode(fmt.Sprint(e.Status))}
	if len(e.Fields) > 0 {
		out = append(out, &demarchev1.ValidationError{Message: "request", Fields: e.Fields})
	}
	return out
}

// Parse reads an answer that is not a success (status 300 or above) into an
// *Error. A body that is not the API's error body (a proxy's page, nothing)
// leaves Msg empty: Error() then says the status.
func Parse(status int, body []byte) *Error {
	var b Body
	_ = json.Unmarshal(body, &b) // not the API's body: the status speaks alone
	e := &Error{Status: status, Msg: b.Error}
	for _, f := range b.Fields {
		e.Fields = append(e.Fields, &demarchev1.FieldError{Field: f.Field, Reason: f.Reason})
	}
	return e
}
