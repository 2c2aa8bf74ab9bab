package gateway

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/apierror"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// A body is refused through the one error table: too large is 413 (code
// invalid), not JSON 400, a bad field 400 naming it.
func TestReadBodyRefusals(t *testing.T) {
	cases := []struct {
		name   string
		body   []byte
		status int
		says   string
		want   error
	}{
		{"too large", bytes.Repeat([]byte(" "), maxBody+1), http.StatusRequestEntityTooLarge, "allowed: at most 8388608 bytes", errs.ErrTooLarge},
		{"not JSON", []byte(`{"crisis": `), http.StatusBadRequest, "body is not a demarche.v1.OpenCrisisRequest in JSON", errs.ErrInvalid},
		{"bad enum", []byte(`{"crisis": {"crisisType": "riot"}}`), http.StatusBadRequest, "riot", errs.ErrInvalid},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		if readBody(rec, httptest.NewRequest(http.MethodPost, "/v1/crises", bytes.NewReader(c.body)), &demarchev1.OpenCrisisRequest{}) {
			t.Fatalf("%s: read", c.name)
		}
		got := apierror.Parse(rec.Code, rec.Body.Bytes())
		if rec.Code != c.status || !strings.Contains(got.Error(), c.says) || !errors.Is(got, c.want) || !strings.Contains(rec.Body.String(), `"code":"invalid"`) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, rec.Code, rec.Body.String(), c.status, c.says)
		}
	}
}
