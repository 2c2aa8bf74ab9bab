package gateway

// The roster at hand: the console's roster picker. GET /console/roster
// lists the roster's experts, searched by kind, expertise, language, region
// and availability, each marked with what stands in the way of booking them
// (on leave, booked in another crisis) before anything is submitted. From a
// decision form's roster field (an envoy, a standby team, a fact-finding
// team), console.js opens the same page's results beside the field and a
// pick puts the expert's roster id in it: the booking is the decision's own
// (the envoy appointment books through the roster service, as from the CLI),
// and the API refuses any id the roster does not hold (rosterids.go).

import (
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway/app"
)

// expertView is one expert in the picker.
type expertView struct {
	ID, Name, Kind                 string
	Languages, Regions, Expertises []string
	// Conflict says what stands in the way of booking ("" : free).
	Conflict string
	Score    int // matches of the search: expertise 3, region 2, language 1
}

// rosterFor: the element id of the field a pick fills (in-<kind>-<field>).
var rosterFor = regexp.MustCompile(`^in-[a-z-]+-[a-z_]+$`)

func (c *console) roster(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	// A filter left empty or not understood filters nothing (the zero
	// value is "any"): the form offers only valid values.
	kind, _ := demarchev1.ParseExpertKind(q.Get("kind"))          // as above
	expertise, _ := demarchev1.ParseExpertise(q.Get("expertise")) // as above
	region, _ := demarchev1.ParseRegion(q.Get("region"))          // as above
	lang := strings.ToLower(strings.TrimSpace(q.Get("language")))
	freeOnly := q.Get("free") == "1"
	forField := q.Get("for")
	if !rosterFor.MatchString(forField) {
		forField = ""
	}
	data := map[string]any{"Title": "Roster", "For": forField, "Q": map[string]string{
		"kind": q.Get("kind"), "expertise": q.Get("expertise"), "region": q.Get("region"), "language": q.Get("language")},
		"Free": freeOnly, "Kinds": enumChoices(demarchev1.ExpertKind(0).Descriptor()),
		"Expertises": enumChoices(demarchev1.Expertise(0).Descriptor()), "Regions": enumChoices(demarchev1.Region(0).Descriptor())}
	var experts demarchev1.ExpertsResponse
	var bookings demarchev1.AssignmentsResponse
	err := natsrpc.Call(r.Context(), c.s.nc, natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &experts, natsrpc.Timeout(3*time.Second))
	if err == nil {
		err = natsrpc.Call(r.Context(), c.s.nc, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{}, &bookings, natsrpc.Timeout(3*time.Second))
	}
	if err != nil {
		c.s.log.Info("console: roster not read", zap.Error(err))
		data["Error"] = "The roster service did not answer; try again in a moment (" + err.Error() + ")."
		c.render(w, r, http.StatusServiceUnavailable, "roster", u, data)
		return
	}
	// Which crises book an expert is not said here: a crisis the reader may
	// not see stays unnamed. That an expert is booked is enough to know.
	booked := map[string]bool{}
	for _, a := range bookings.GetAssignments() {
		booked[a.GetExpertId()] = true
	}
	var out []expertView
	for _, e := range experts.GetExperts() {
		if kind != 0 && e.GetKind() != kind {
			continue
		}
		v := expertView{ID: e.GetId(), Name: e.GetName(), Kind: app.ExpertKindWords(e.GetKind()), Languages: e.GetLanguages()}
		for _, rg := range e.GetRegions() {
			v.Regions = append(v.Regions, words(rg.Slug()))
			if rg == region {
				v.Score += 2
			}
		}
		for _, x := range e.GetExpertise() {
			v.Expertises = append(v.Expertises, words(x.Slug()))
			if x == expertise {
				v.Score += 3
			}
		}
		if lang != "" && slices.ContainsFunc(e.GetLanguages(), func(l string) bool { return strings.EqualFold(l, lang) }) {
			v.Score++
		}
		// A search narrows the list to those that match what was asked.
		if (expertise != 0 && !slices.Contains(e.GetExpertise(), expertise)) || (region != 0 && !slices.Contains(e.GetRegions(), region)) ||
			(lang != "" && !slices.ContainsFunc(e.GetLanguages(), func(l string) bool { return strings.EqualFold(l, lang) })) {
			continue
		}
		switch {
		case !e.GetAvailable():
			v.Conflict = "not deployable now (on leave or otherwise unavailable)"
		case booked[e.GetId()]:
			v.Conflict = "booked in another crisis"
		}
		if freeOnly && v.Conflict != "" {
			continue
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Conflict == "") != (out[j].Conflict == "") {
			return out[i].Conflict == ""
		}
		return out[i].Score > out[j].Score
	})
	data["Experts"] = out
	c.render(w, r, http.StatusOK, "roster", u, data)
}

// enumChoices are an enum's values (UNSPECIFIED left out) as choices.
func enumChoices(d protoreflect.EnumDescriptor) []demarchev1.Choice {
	var out []demarchev1.Choice
	for i := 0; i < d.Values().Len(); i++ {
		if n := d.Values().Get(i).Number(); n != 0 {
			out = append(out, demarchev1.Choice{Value: demarchev1.EnumValueSlug(d, n), Words: demarchev1.EnumWords(d, n)})
		}
	}
	return out
}
