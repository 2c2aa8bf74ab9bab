package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSignalsQueryParameters: GET /v1/signals reads its query, and a bad
// parameter is refused naming it (nothing is asked of early warning).
func TestSignalsQueryParameters(t *testing.T) {
	q, err := signalsQuery(httptest.NewRequest("GET", "/v1/signals?country=gn&type=intercommunal-violence&since=2009-09-01&until=2009-11-01T00:00:00Z&limit=50&after=1/x", nil))
	if err != nil {
		t.Fatal(err)
	}
	if q.GetCountryCode() != "GN" || q.GetCrisisType().Slug() != "intercommunal-violence" || q.GetLimit() != 50 || q.GetAfter() != "1/x" ||
		q.GetSince().AsTime().Format("2006-01-02") != "2009-09-01" || q.GetUntil().AsTime().Format("2006-01-02") != "2009-11-01" {
		t.Fatalf("query: %v", q)
	}
	for query, field := range map[string]string{
		"country=XX": "country", "type=nonsense": "type", "since=yesterday": "since", "until=2009-02-30": "until",
		"limit=0": "limit", "limit=5001": "limit", "since=2010-01-01&until=2009-01-01": "until",
	} {
		if _, err := signalsQuery(httptest.NewRequest("GET", "/v1/signals?"+query, nil)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v, want an error naming %s", query, err, field)
		}
	}
}
