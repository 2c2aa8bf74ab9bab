package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/apierror"
	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// maxBody bounds a request body.
const maxBody = 8 << 20

func readBody(w http.ResponseWriter, r *http.Request, into proto.Message) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = &errs.Error{Sentinel: errs.ErrTooLarge, Msg: fmt.Sprintf("body: %v (allowed: at most %d bytes)", err, maxBody)}
		} else { // the client went away or sent a broken body
			err = &errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("body: %v", err)}
		}
		writeError(w, err)
		return false
	}
	if err := apijson.Unmarshal(b, into); err != nil {
		var fe *demarchev1.FieldError
		if errors.As(err, &fe) {
			writeError(w, fe)
			return false
		}
		writeError(w, &errs.Error{Sentinel: errs.ErrInvalid, Msg: fmt.Sprintf("body is not a %s in JSON: %v", into.ProtoReflect().Descriptor().FullName(), err)})
		return false
	}
	return true
}

func writeProto(w http.ResponseWriter, status int, m proto.Message) {
	b, err := apijson.Marshal(m) // the API's one JSON style
	if err != nil {
		writeError(w, fmt.Errorf("%w: encode response: %v", errs.ErrInternal, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b) // the status is sent: a failed write means the client went away, no one is left to tell
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the status is sent: a failed write means the client went away, no one is left to tell
}

// writeError answers an error with its status (errs.HTTPStatus: the one
// mapping), its stable code, and, for bad input, each field: the API's one
// error body (pkg/apierror, which the CLI and the console read back).
func writeError(w http.ResponseWriter, err error) { apierror.Write(w, err) }
