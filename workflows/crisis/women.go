package crisis

import (
	"fmt"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// DeployedExperts are the roster ids a crisis deployed: the envoys and
// standby experts named in its appointments.
func DeployedExperts(st *demarchev1.CrisisState) []string {
	var out []string
	for _, d := range st.GetDecisions() {
		if a := d.GetRequest().GetEnvoyAppointment(); a != nil {
			for _, id := range append([]string{a.GetEnvoy()}, a.GetStandbyTeam()...) {
				if id != "" {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// WomenDeployed is the share of women among the mediators deployed
// (¶67 "increasing the number of senior female mediators"), from the
// roster's optional, self-declared field only: an expert who declared nothing
// is counted as not declared, never guessed.
type WomenDeployed struct {
	// Deployed: distinct experts deployed; Declared: those of them who
	// declared a gender on the roster; Women: those who declared woman.
	Deployed, Declared, Women int
	// NotOnRoster: deployed ids the roster no longer lists.
	NotOnRoster int
}

// CountWomenDeployed counts the distinct ids against the roster's experts.
func CountWomenDeployed(ids []string, experts []*demarchev1.Expert) WomenDeployed {
	deployed := map[string]bool{}
	for _, id := range ids {
		deployed[id] = true
	}
	w := WomenDeployed{Deployed: len(deployed)}
	seen := 0
	for _, e := range experts {
		if !deployed[e.GetId()] {
			continue
		}
		seen++
		switch e.GetSelfDeclaredGender() {
		case demarchev1.SelfDeclaredGender_SELF_DECLARED_GENDER_UNSPECIFIED:
		case demarchev1.SelfDeclaredGender_SELF_DECLARED_GENDER_WOMAN:
			w.Declared++
			w.Women++
		default:
			w.Declared++
		}
	}
	w.NotOnRoster = w.Deployed - seen
	return w
}

// String says it in a line.
func (w WomenDeployed) String() string {
	if w.Declared == 0 {
		return fmt.Sprintf("women among deployed mediators: %d deployed, none declared a gender on the roster", w.Deployed)
	}
	return fmt.Sprintf("women among deployed mediators: %d of the %d who declared (%.0f%%); %d deployed, %d not declared",
		w.Women, w.Declared, 100*float64(w.Women)/float64(w.Declared), w.Deployed, w.Deployed-w.Declared)
}
