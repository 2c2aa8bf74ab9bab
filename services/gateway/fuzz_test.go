package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

// bodies are the request bodies the API decodes, by route.
var bodies = []func() proto.Message{
	func() proto.Message { return &demarchev1.OpenCrisisRequest{} },
	func() proto.Message { return &demarchev1.DecisionRequest{} },
	func() proto.Message { return &demarchev1.SeverityControl{} },
	func() proto.Message { return &demarchev1.StageControl{} },
	func() proto.Message { return &demarchev1.PartnerRoleAck{} },
	func() proto.Message { return &demarchev1.WarnControl{} },
	func() proto.Message { return &demarchev1.IngestRequest{} },
	func() proto.Message { return &demarchev1.SharingControl{} },
}

// FuzzRequestBodies: whatever a client sends, decoding, stamping the
// principal and the input rules either accept it or refuse it as bad input
// (400), never panic and never answer 5xx. The seed corpus is committed
// under testdata/fuzz and runs in make test.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"crisis": {"title": "Coup", "countryCode": "GN", "crisisType": "CRISIS_TYPE_GENERAL", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}, "drill": {"decisionDelay": "1s", "timeScale": 0.001}}`,
		`{"rationale": "x", "fundingRequest": {"requestId": "FR-1", "fund": "f", "amountUsd": 1e300, "purpose": "p"}}`,
		`{"reason": "x\u001b[31m", "stage": "STAGE_WARNING"}`,
		`{"warning": {"source": "s", "summary": "s", "severity": 3, "observedAt": "9999-12-31T23:59:59Z"}}`,
		`{"signals": [{"source": "a", "weight": "NaN"}]}`,
		`{"principal": "bob", "roles": [99]}`,
		`{"reason": "x", "stage": "good-offices", "share": ["ECOWAS", "ecowas", "A\u0000"], "unshare": ["ECOWAS"]}`,
		`{"crisis": {"crisisType": "unconstitutional_change", "confidentiality": "Restricted", "region": 7}}`,
	} {
		for i := range bodies {
			f.Add(i, []byte(seed))
		}
	}
	p := &authn.Principal{Subject: "duty", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER}}
	f.Fuzz(func(t *testing.T, which int, body []byte) {
		if which < 0 {
			which = -which
		}
		m := bodies[which%len(bodies)]()
		err := apijson.Unmarshal(body, m) // as readBody decodes
		if err != nil && !errors.As(err, new(*demarchev1.FieldError)) {
			return // answered 400 by readBody
		}
		if err == nil {
			err = app.Stamp(m, p)
		}
		if err == nil {
			if v, ok := m.(demarchev1.Validator); ok {
				err = v.Validate()
			}
		}
		if err != nil {
			if st := errs.HTTPStatus(err); st != http.StatusBadRequest {
				t.Fatalf("%T %s: refused with %d (%v), want 400", m, body, st, err)
			}
			if len(fmt.Sprint(err)) == 0 {
				t.Fatal("an empty refusal")
			}
		}
	})
}
