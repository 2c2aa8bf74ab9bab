package gateway

// Search and lessons for both transports: the query string of GET
// /v1/crises and GET /v1/lessons, and of the console's search and lessons
// pages, read by one parser each (a saved filter is the page's URL).

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/demarche/demarche/pkg/authn"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
	"github.com/demarche/demarche/workflows/crisis"
)

// queryParams are the query parameters of the routes that take some, in
// the OpenAPI document's order (paramDocs describes each).
var queryParams = map[string][]string{
	"GET /v1/crises": {"q", "country", "region", "type", "stage", "severity_min", "severity_max", "status", "open", "outcome", "drills",
		"opened_from", "opened_to", "limit"},
	"GET /v1/lessons": {"q", "country", "region", "type", "outcome", "drills", "limit"},
}

// parseSearch reads a crisis search from a query string; an error names the
// parameter, why, and what is allowed (errs.ErrInvalid).
func parseSearch(q url.Values) (app.ListQuery, error) {
	lq := app.ListQuery{Text: strings.TrimSpace(q.Get("q")), Limit: 500}
	if len(lq.Text) > 200 {
		return lq, &demarchev1.FieldError{Field: "q", Reason: "must be at most 200 characters"}
	}
	f := &lq.Filter
	var err error
	if f.Country, err = countryParam(q.Get("country")); err != nil {
		return lq, err
	}
	if v := q.Get("region"); v != "" {
		if f.Region, err = demarchev1.ParseRegion(v); err != nil {
			return lq, err
		}
	}
	if v := q.Get("stage"); v != "" {
		if f.Stage, err = demarchev1.ParseStage(v); err != nil {
			return lq, err
		}
	}
	if v := q.Get("type"); v != "" {
		if f.CrisisType, err = demarchev1.ParseCrisisType(v); err != nil {
			return lq, err
		}
	}
	if v := q.Get("outcome"); v != "" {
		if lq.Outcome, err = demarchev1.ParseOutcome(v); err != nil {
			return lq, err
		}
	}
	for name, into := range map[string]*int32{"severity_min": &f.SeverityMin, "severity_max": &f.SeverityMax} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 5 {
				return lq, &demarchev1.FieldError{Field: name, Reason: "must be a severity from 1 to 5"}
			}
			*into = int32(n)
		}
	}
	if f.SeverityMin > 0 && f.SeverityMax > 0 && f.SeverityMin > f.SeverityMax {
		return lq, &demarchev1.FieldError{Field: "severity_max", Reason: fmt.Sprintf("must be at least severity_min (%d)", f.SeverityMin)}
	}
	switch v := q.Get("status"); v {
	case "":
		f.OpenOnly = q.Get("open") == "true"
	case "open":
		f.OpenOnly = true
	case "closed":
		f.ClosedOnly = true
	default:
		return lq, &demarchev1.FieldError{Field: "status", Reason: fmt.Sprintf("%q is not a status: open or closed (or leave it out)", truncate(v, 20))}
	}
	switch v := q.Get("drills"); v {
	case "", "true", "all":
	case "false":
		f.ExcludeDrills = true
	case "only":
		f.DrillsOnly = true
	default:
		return lq, &demarchev1.FieldError{Field: "drills", Reason: fmt.Sprintf("%q is not understood: false (real crises only), only (drills only), or true (both)", truncate(v, 20))}
	}
	if f.OpenedFrom, err = dayParam("opened_from", q.Get("opened_from"), false); err != nil {
		return lq, err
	}
	if f.OpenedBefore, err = dayParam("opened_to", q.Get("opened_to"), true); err != nil {
		return lq, err
	}
	if !f.OpenedFrom.IsZero() && !f.OpenedBefore.IsZero() && !f.OpenedFrom.Before(f.OpenedBefore) {
		return lq, &demarchev1.FieldError{Field: "opened_to", Reason: "must not be before opened_from"}
	}
	if v := q.Get("limit"); v != "" {
		if lq.Limit, err = strconv.Atoi(v); err != nil || lq.Limit < 1 || lq.Limit > 5000 {
			return lq, &demarchev1.FieldError{Field: "limit", Reason: "must be a number from 1 to 5000"}
		}
	}
	return lq, nil
}

// dayParam reads a day (YYYY-MM-DD, UTC) or a time (RFC 3339). As an upper
// bound (end) a day counts whole: the bound is the next day's start.
func dayParam(name, v string, end bool) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, &demarchev1.FieldError{Field: name, Reason: fmt.Sprintf("%q is not a day (YYYY-MM-DD) or a time (RFC 3339, e.g. 2026-11-28T09:00:00Z)", truncate(v, 40))}
	}
	return t, nil
}

// parseLessons reads a lessons query (type, region, country, outcome, q,
// drills, limit).
func parseLessons(q url.Values) (app.LessonsQuery, error) {
	lq := app.LessonsQuery{Text: strings.TrimSpace(q.Get("q")), Limit: 200}
	if len(lq.Text) > 200 {
		return lq, &demarchev1.FieldError{Field: "q", Reason: "must be at most 200 characters"}
	}
	var err error
	if lq.Country, err = countryParam(q.Get("country")); err != nil {
		return lq, err
	}
	if v := q.Get("type"); v != "" {
		if lq.CrisisType, err = demarchev1.ParseCrisisType(v); err != nil {
			return lq, err
		}
	}
	if v := q.Get("region"); v != "" {
		if lq.Region, err = demarchev1.ParseRegion(v); err != nil {
			return lq, err
		}
	}
	if v := q.Get("outcome"); v != "" {
		if lq.Outcome, err = demarchev1.ParseOutcome(v); err != nil {
			return lq, err
		}
	}
	switch v := q.Get("drills"); v {
	case "", "false":
	case "true":
		lq.Drills = true
	default:
		return lq, &demarchev1.FieldError{Field: "drills", Reason: fmt.Sprintf("%q is not understood: true (include drills' lessons) or false", truncate(v, 20))}
	}
	if v := q.Get("limit"); v != "" {
		if lq.Limit, err = strconv.Atoi(v); err != nil || lq.Limit < 1 || lq.Limit > 1000 {
			return lq, &demarchev1.FieldError{Field: "limit", Reason: "must be a number from 1 to 1000"}
		}
	}
	return lq, nil
}

// getLessons lists closure lessons across the closed crises the principal
// may see (app.Lessons; refused to a partner liaison: lessons are internal).
func (s *Service) getLessons(w http.ResponseWriter, r *http.Request, p *authn.Principal) {
	q, err := parseLessons(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	q.Via = via(r)
	lessons, err := s.app.Lessons(r.Context(), p, q)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, http.StatusOK, &demarchev1.ListLessonsResponse{Lessons: lessons})
}

// summaries is a listing as the API answers it.
func summaries(rows []crisis.Summary) *demarchev1.ListCrisesResponse {
	resp := &demarchev1.ListCrisesResponse{}
	for _, row := range rows {
		resp.Crises = append(resp.Crises, row.Proto())
	}
	return resp
}
