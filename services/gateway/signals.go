package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// getSignals answers GET /v1/signals: accepted signals from early warning's
// signal store (every live or historical signal, its latest revision),
// oldest event first, a page at a time. Query: country, type, since, until
// (RFC 3339 or 2006-01-02; since inclusive, until exclusive), limit (up to
// 5000, default 1000), after (a page's next). A stored signal names no
// crisis, so every reader of scores may read it (the crises a signal fed are
// shown, as in the inbox, only as far as the reader is cleared).
func (s *Service) getSignals(w http.ResponseWriter, r *http.Request, _ *authn.Principal) {
	q, err := signalsQuery(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var page demarchev1.SignalsPage
	if err := natsrpc.Call(r.Context(), s.nc, natsrpc.EarlyWarningSignals, q, &page, natsrpc.Protobuf()); err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &page)
}

// signalsQuery reads GET /v1/signals's parameters; a bad one is named.
func signalsQuery(r *http.Request) (*demarchev1.SignalsQuery, error) {
	v := r.URL.Query()
	bad := func(field, format string, args ...any) error {
		return &demarchev1.ValidationError{Message: "signals query", Fields: []*demarchev1.FieldError{{Field: field, Reason: fmt.Sprintf(format, args...)}}}
	}
	country, err := countryParam(v.Get("country"))
	if err != nil {
		return nil, err
	}
	q := &demarchev1.SignalsQuery{CountryCode: country, After: v.Get("after")}
	if t := v.Get("type"); t != "" {
		if q.CrisisType, err = demarchev1.ParseCrisisType(t); err != nil {
			return nil, bad("type", "%s", err.Error())
		}
	}
	for _, f := range []struct {
		name string
		to   **timestamppb.Timestamp
	}{{"since", &q.Since}, {"until", &q.Until}} {
		raw := v.Get(f.name)
		if raw == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			if at, err = time.Parse(time.DateOnly, raw); err != nil {
				return nil, bad(f.name, "%q is neither an RFC 3339 time nor a date (2006-01-02)", truncate(raw, 40))
			}
		}
		*f.to = timestamppb.New(at)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > demarchev1.MaxSignalsQueryLimit {
			return nil, bad("limit", "%q is not a number from 1 to %d", truncate(l, 20), demarchev1.MaxSignalsQueryLimit)
		}
		q.Limit = int32(n)
	}
	return q, q.Validate()
}
