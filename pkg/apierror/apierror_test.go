package apierror

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// What the gateway writes, a client reads back as the same kind of error.
func TestWriteThenParse(t *testing.T) {
	verr := &demarchev1.ValidationError{Message: "crisis", Fields: []*demarchev1.FieldError{
		{Field: "crisis.severity", Reason: "9 is out of range (allowed: 1 to 5)"}, {Field: "crisis.title", Reason: "is required"}}}
	cases := []struct {
		name   string
		err    error
		want   error
		status int
		code   string
		fields int
	}{
		{"validation", verr, errs.ErrInvalid, 400, "invalid", 2},
		{"one field", &demarchev1.FieldError{Field: "limit", Reason: "must be a number from 1 to 5000"}, errs.ErrInvalid, 400, "invalid", 1},
		{"too large", fmt.Errorf("body: %w", errs.ErrTooLarge), errs.ErrTooLarge, 413, "invalid", 0},
		{"unauthenticated", fmt.Errorf("%w: expired", errs.ErrUnauthenticated), errs.ErrUnauthenticated, 401, "unauthenticated", 0},
		{"forbidden", fmt.Errorf("%w: needs one of the roles duty-officer", errs.ErrForbidden), errs.ErrForbidden, 403, "forbidden", 0},
		{"not found", fmt.Errorf("%w: NE-1", errs.ErrNotFound), errs.ErrNotFound, 404, "not_found", 0},
		{"conflict", fmt.Errorf("%w: booked elsewhere", errs.ErrConflict), errs.ErrConflict, 409, "conflict", 0},
		{"rule", fmt.Errorf("rejected: %w", &errs.Error{Sentinel: errs.ErrRule, Msg: "rule four-eyes: alice requested FR-1"}), errs.ErrRule, 422, "rule", 0},
		{"unavailable", fmt.Errorf("%w: schema service", errs.ErrUnavailable), errs.ErrUnavailable, 503, "unavailable", 0},
		{"internal", errors.New("boom"), errs.ErrInternal, 500, "internal", 0},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		Write(rec, c.err)
		if _, body := Of(c.err); rec.Code != c.status || body.Code != c.code || len(body.Fields) != c.fields || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: wrote %d %+v, want %d code %s with %d fields", c.name, rec.Code, body, c.status, c.code, c.fields)
		}
		got := Parse(rec.Code, rec.Body.Bytes())
		if !errors.Is(got, c.want) || got.Error() != c.err.Error() || len(got.Fields) != c.fields {
			t.Errorf("%s: read back %q (%d fields), matching %v: %t; want %q", c.name, got, len(got.Fields), c.want, errors.Is(got, c.want), c.err.Error())
		}
		var back *demarchev1.ValidationError
		if c.fields > 0 && (!errors.As(got, &back) || !back.HasField(verr.Fields[0].Field) && !back.HasField("limit")) {
			t.Errorf("%s: the fields are not a validation error: %v", c.name, got)
		}
	}
}

func TestParseOtherBodies(t *testing.T) {
	// A message that does not name its fields gets them appended.
	got := Parse(400, []byte(`{"error": "the crisis was not opened", "code": "invalid", "fields": [{"field": "title", "reason": "is required"}]}`))
	if got.Error() != "the crisis was not opened (title: is required)" {
		t.Errorf("fields not named: %q", got.Error())
	}
	// Not the API's body (a proxy's page, nothing): the status speaks.
	for _, body := range []string{"<html>bad gateway</html>", ""} {
		got := Parse(http.StatusBadGateway, []byte(body))
		if got.Msg != "" || got.Error() != "502 Bad Gateway" || !errors.Is(got, errs.ErrInternal) {
			t.Errorf("%q: %q", body, got.Error())
		}
	}
	if got := Parse(http.StatusServiceUnavailable, nil); !errors.Is(got, errs.ErrUnavailable) {
		t.Errorf("503 reads as %v", got)
	}
}
