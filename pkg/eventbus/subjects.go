package eventbus

import (
	"fmt"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Stream and subject names. See the package documentation for the scheme.
const (
	StreamName           = "DEMARCHE_CRISIS"
	SubjectRoot          = "demarche.crisis"
	DeadLetterStreamName = "DEMARCHE_DLQ"
	DeadLetterRoot       = "demarche.dlq"
)

// Route says where on the subject tree one crisis's events go.
type Route struct {
	Region   demarchev1.Region
	Country  string
	CrisisID string
}

// RouteOf returns the route of a crisis.
func RouteOf(c *demarchev1.Crisis) Route {
	return Route{Region: c.GetRegion(), Country: c.GetCountryCode(), CrisisID: c.GetId()}
}

// Subject is the full subject of one event type on this route.
func (r Route) Subject(eventToken string) string {
	return fmt.Sprintf("%s.%s.%s.%s.%s", SubjectRoot, r.Region.Slug(), r.Country, r.CrisisID, eventToken)
}

// AllEvents matches every crisis event.
func AllEvents() string { return SubjectRoot + ".>" }

// RegionEvents matches every event of crises in one region.
func RegionEvents(r demarchev1.Region) string { return fmt.Sprintf("%s.%s.>", SubjectRoot, r.Slug()) }

// CountryEvents matches every event of crises in one country.
func CountryEvents(country string) string { return fmt.Sprintf("%s.*.%s.>", SubjectRoot, country) }

// CrisisEvents matches every event of one crisis.
func CrisisEvents(crisisID string) string { return fmt.Sprintf("%s.*.*.%s.>", SubjectRoot, crisisID) }

// DeadLetterSubject is where a consumer copies the events it gives up on.
func DeadLetterSubject(consumer string) string { return DeadLetterRoot + "." + consumer }
