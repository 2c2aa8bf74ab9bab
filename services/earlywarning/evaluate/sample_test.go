package evaluate

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/sahel-2019-2023-synthetic.csv from its generator")

// SamplePath is the multi-year sample docs/scorecard.md evaluates.
const samplePath = "testdata/sahel-2019-2023-synthetic.csv"

// TestSyntheticSampleIsCurrent: the committed sample is its generator's
// output (`go test ./services/earlywarning/evaluate -run
// TestSyntheticSampleIsCurrent -update` rewrites it; then regenerate
// docs/scorecard.md, see docs/analysts.md).
func TestSyntheticSampleIsCurrent(t *testing.T) {
	want := syntheticSahel()
	if *update {
		if err := os.WriteFile(samplePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not its generator's output: rewrite it with -update", samplePath)
	}
	res, err := Run(bytes.NewReader(got), "acled", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 0 || res.Outcomes == 0 || res.To.Sub(res.From) < 4*365*day {
		t.Fatalf("sample: %d rejected, %d outcomes, %s to %s: want none rejected, some outcomes, several years",
			len(res.Rejected), res.Outcomes, res.From, res.To)
	}
}

// syntheticSahel is five years (2019–2023) of ACLED-format events in seven
// West African and Sahel countries, made up: a background of protests, riots
// and small clashes; escalations of sustained violence, some preceded by a
// wave of protests or by a coup, some sudden; waves of protests that come to
// nothing. The countries and the coups' months are real (Mali 2020-08 and
// 2021-05, Guinea 2021-09, Burkina Faso 2022-01 and 2022-09, Niger 2023-07);
// every event, count and note is invented. Deterministic: its own generator
// (PCG, fixed seed) and arithmetic, so any Go release writes the same file.
func syntheticSahel() []byte {
	rng := rand.New(rand.NewPCG(22, 4))
	uniform := func() float64 { return float64(rng.Uint64()>>11) / (1 << 53) }
	intn := func(n int) int { return int(uniform() * float64(n)) }
	// poisson by inversion (small means).
	poisson := func(mean float64) int {
		l, k, p := math.Exp(-mean), 0, 1.0
		for {
			p *= uniform()
			if p <= l {
				return k
			}
			k++
		}
	}
	// deaths: geometric with the given mean.
	deaths := func(mean float64) int {
		if mean <= 0 {
			return 0
		}
		return int(math.Floor(math.Log(1-uniform()) / math.Log(1-1/(mean+1))))
	}
	type country struct {
		code, name, iso, capital string
		admin1                   []string
		background               float64 // events a day
	}
	cs := []country{
		{"ML", "Mali", "466", "Bamako", []string{"Mopti", "Gao", "Timbuktu", "Segou", "Kidal"}, 0.35},
		{"BF", "Burkina Faso", "854", "Ouagadougou", []string{"Sahel", "Nord", "Est", "Centre-Nord", "Boucle du Mouhoun"}, 0.35},
		{"NE", "Niger", "562", "Niamey", []string{"Tillaberi", "Diffa", "Tahoua", "Maradi"}, 0.25},
		{"NG", "Nigeria", "566", "Abuja", []string{"Borno", "Zamfara", "Kaduna", "Plateau", "Benue"}, 0.5},
		{"TD", "Chad", "148", "N'Djamena", []string{"Lac", "Tibesti", "Ouaddai", "Logone Oriental"}, 0.15},
		{"GN", "Guinea", "324", "Conakry", []string{"Conakry", "Kankan", "Nzerekore", "Labe"}, 0.12},
		{"SN", "Senegal", "686", "Dakar", []string{"Dakar", "Ziguinchor", "Thies", "Kolda"}, 0.1},
	}
	type kind struct {
		eventType, subType, actor1, actor2, interaction, notes string
		civilians                                              bool
		deathMean                                              float64
	}
	protest := kind{"Protests", "Peaceful protest", "Protesters (%s)", "", "60", "Demonstrators marched against the cost of living.", false, 0}
	riot := kind{"Riots", "Violent demonstration", "Rioters (%s)", "Police Forces of %s", "15", "Youths clashed with police after a protest.", false, 0.2}
	repressed := kind{"Protests", "Excessive force against protesters", "Police Forces of %s", "Protesters (%s)", "16", "Police fired on protesters demanding the release of detainees.", false, 1.5}
	clash := kind{"Battles", "Armed clash", "Military Forces of %s", "JNIM: Group for Support of Islam and Muslims", "12", "Soldiers clashed with militants near a village.", false, 2}
	attack := kind{"Violence against civilians", "Attack", "JNIM: Group for Support of Islam and Muslims", "Civilians (%s)", "27", "Gunmen attacked villagers on a market day.", true, 3}
	communal := kind{"Violence against civilians", "Attack", "Fulani Ethnic Militia (%s)", "Dogon Ethnic Militia (%s)", "44", "Herder and farmer militias clashed over land.", true, 2.5}
	remote := kind{"Explosions/Remote violence", "Remote explosive/landmine/IED", "JNIM: Group for Support of Islam and Muslims", "Military Forces of %s", "12", "An improvised explosive device struck a military convoy.", false, 4}
	coup := kind{"Strategic developments", "Non-violent transfer of territory", "Military Forces of %s", "Government of %s", "11", "Soldiers seized power in a coup and dissolved the government.", false, 0.5}
	background := []kind{protest, protest, protest, riot, clash, attack}
	violence := []kind{clash, clash, attack, attack, communal, remote}

	type row struct {
		at time.Time
		r  []string
	}
	var rows []row
	n := 0
	add := func(c country, at time.Time, k kind, mult float64) {
		n++
		who := func(s string) string {
			if s == "" || !bytes.Contains([]byte(s), []byte("%s")) {
				return s
			}
			return fmt.Sprintf(s, c.name)
		}
		d := deaths(k.deathMean * mult)
		if k.deathMean > 1 && intn(60) == 0 {
			d += 20 + intn(60) // a massacre now and then
		}
		civ := ""
		if k.civilians {
			civ = "Civilian targeting"
		}
		admin := c.admin1[intn(len(c.admin1))]
		if k.eventType == "Protests" || k.eventType == "Riots" || k.eventType == "Strategic developments" {
			if intn(2) == 0 {
				admin = c.capital
			}
		}
		rows = append(rows, row{at, []string{fmt.Sprintf("%s%05d", c.code, n), at.Format(time.DateOnly), at.Format("2006"),
			k.eventType, k.subType, who(k.actor1), who(k.actor2), k.interaction, civ, c.iso, c.name, admin, admin,
			k.notes, fmt.Sprint(d)}})
	}
	from, to := date("2019-01-01"), date("2023-12-31")
	ndays := int(to.Sub(from)/day) + 1
	coups := map[string][]string{"ML": {"2020-08-18", "2021-05-24"}, "GN": {"2021-09-05"}, "BF": {"2022-01-24", "2022-09-30"}, "NE": {"2023-07-26"}}
	for _, c := range cs {
		for d := range ndays {
			at := from.Add(time.Duration(d) * day)
			for range poisson(c.background) {
				add(c, at, background[intn(len(background))], 1)
			}
		}
		for _, s := range coups[c.code] {
			at := date(s)
			for i := range 2 + intn(3) {
				add(c, at.Add(time.Duration(i)*day), coup, 1)
			}
		}
		// Two to four episodes a country: escalations (after a wave of
		// protests, or sudden) and waves that come to nothing.
		episodes := 2 + intn(3)
		for e := range episodes {
			start := from.Add(time.Duration(120+(e*(ndays-240))/episodes+intn(ndays/episodes/2)) * day)
			switch intn(3) {
			case 0: // a wave of repressed protests, then violence
				for d := range 14 + intn(14) {
					for range 2 + intn(5) {
						k := protest
						if intn(3) == 0 {
							k = repressed
						}
						add(c, start.Add(time.Duration(d)*day), k, 1)
					}
				}
				start = start.Add(time.Duration(21+intn(21)) * day)
				fallthrough
			case 1: // sustained violence
				for d := range 20 + intn(70) {
					for range poisson(1.5 + uniform()*2) {
						add(c, start.Add(time.Duration(d)*day), violence[intn(len(violence))], 1.5)
					}
				}
			default: // a wave of protests that comes to nothing
				for d := range 10 + intn(14) {
					for range 2 + intn(5) {
						add(c, start.Add(time.Duration(d)*day), protest, 1)
					}
				}
			}
		}
	}
	// ACLED exports are newest first.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.After(rows[j].at) })
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"event_id_cnty", "event_date", "year", "event_type", "sub_event_type", "actor1", "actor2", "interaction",
		"civilian_targeting", "iso", "country", "admin1", "location", "notes", "fatalities"})
	for _, r := range rows {
		_ = w.Write(r.r)
	}
	w.Flush()
	return b.Bytes()
}
