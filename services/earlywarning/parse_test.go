package earlywarning_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

const acledHeader = "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,interaction,civilian_targeting,iso,region,country,admin1,admin2,location,latitude,longitude,source,notes,fatalities,timestamp,tags\n"

// acledRow builds one ACLED row; notes are quoted as a CSV writer would.
func acledRow(id, date, eventType, sub, actor1, actor2, interaction, iso, country, location, notes, fatalities string) string {
	q := `"` + strings.ReplaceAll(notes, `"`, `""`) + `"`
	return strings.Join([]string{id, date, "2023", "1", "Political violence", eventType, sub, actor1, actor2, interaction, "",
		iso, "Western Africa", country, "Conakry", "", location, "9.5", "-13.7", "Local press", q, fatalities, "1676900000", "extra"}, ",") + "\n"
}

// acledFile has 11 data rows on lines 2-14 (line numbers in the comments).
func acledFile() string {
	var b strings.Builder
	b.WriteString(acledHeader) // line 1
	// line 2: coup, notes with commas and quotes.
	b.WriteString(acledRow("GIN1001", "2023-02-16", "Battles", "Armed clash", "Military Forces of Guinea (2021-)", "Mutiny of Military Forces of Guinea", "11", "324", "Guinea", "Conakry",
		`Soldiers, some "mutineers", attempted a coup near the palace, officials said.`, "4"))
	// line 3: spans lines 3-5 (notes with line breaks), long date format.
	b.WriteString(acledRow("GIN1002", "16 February 2023", "Protests", "Peaceful protest", "Protesters (Guinea)", "", "60", "324", "Guinea", "Kaloum",
		"Protest against the junta.\nThousands marched, chanting \"no to the transition\".\nNo injuries.", "0"))
	// line 6: unknown country.
	b.WriteString(acledRow("ATL0001", "2023-02-16", "Riots", "Mob violence", "Rioters", "", "55", "999", "Atlantis", "Poseidonis", "Unrest.", "0"))
	// line 7: impossible date.
	b.WriteString(acledRow("GIN1003", "2023-13-45", "Riots", "Mob violence", "Rioters", "", "55", "324", "Guinea", "Conakry", "Unrest.", "0"))
	// line 8: fatalities not a number.
	b.WriteString(acledRow("GIN1004", "2023-02-17", "Riots", "Mob violence", "Rioters", "", "55", "324", "Guinea", "Conakry", "Unrest.", "many"))
	// line 9: duplicate of line 2.
	b.WriteString(acledRow("GIN1001", "2023-02-16", "Battles", "Armed clash", "Military Forces of Guinea (2021-)", "Mutiny of Military Forces of Guinea", "11", "324", "Guinea", "Conakry",
		`Soldiers, some "mutineers", attempted a coup near the palace, officials said.`, "4"))
	// line 10: country only by its numeric code (Mali); identity militias clash.
	b.WriteString(acledRow("MLI2001", "17 February 2023", "Battles", "Armed clash", "Dozo Communal Militia (Mali)", "Fulani Ethnic Militia (Mali)", "44", "466", "", "Bankass", "Clash between militias, 12 killed.", "12"))
	// line 11: a field short.
	b.WriteString("KEN3001,2023-02-18,2023,1,Political violence,Riots\n")
	// line 12: election violence in Kenya.
	b.WriteString(acledRow("KEN3002", "2023-02-18", "Riots", "Violent demonstration", "Rioters (Kenya)", "Police Forces of Kenya (2022-)", "51", "404", "Kenya", "Kisumu",
		"Supporters of an opposition candidate clashed with police after the election results.", "2"))
	// line 13: unterminated... no: a bare quote inside an unquoted field.
	b.WriteString(`KEN3003,2023-02-18,2023,1,Political violence,Riots,Mob violence,Rioters,,50,,404,Eastern Africa,Kenya,Nairobi,,Nairobi,1,36,Press,Rioters "burned" tyres,0,1676900000,x` + "\n")
	// line 14: fine again after the malformed row (UK name spelling with accents).
	b.WriteString(acledRow("CIV4001", "2023-02-19", "Violence against civilians", "Attack", "Unidentified Armed Group (Ivory Coast)", "Civilians (Ivory Coast)", "37", "", "Côte d’Ivoire", "Abidjan", "Attack on a village.", "1"))
	return b.String()
}

func parseAll(t *testing.T, format earlywarning.Format, data string) (map[string]*demarchev1.Signal, map[int]string) {
	t.Helper()
	rd, err := earlywarning.NewReader(strings.NewReader(data), format)
	if err != nil {
		t.Fatal(err)
	}
	sigs, rejected := map[string]*demarchev1.Signal{}, map[int]string{}
	for {
		sig, line, err := rd.Next()
		if err != nil {
			var re *earlywarning.RowError
			if errors.As(err, &re) {
				if re.Line != line {
					t.Errorf("row error line %d, Next returned %d", re.Line, line)
				}
				rejected[re.Line] = re.Reason
				continue
			}
			break
		}
		sigs[fmt.Sprintf("%d:%s", line, sig.GetSourceId())] = sig
	}
	return sigs, rejected
}

func TestACLEDParseRowsLinesAndRules(t *testing.T) {
	t.Parallel()
	sigs, rejected := parseAll(t, earlywarning.FormatACLED, acledFile())

	wantRejected := map[int]string{
		6:  `country "Atlantis" (iso "999") is not a known country`,
		7:  `event_date "2023-13-45" is not a date`,
		8:  `fatalities "many" is not a non-negative whole number`,
		11: "has 6 fields, the header has 24",
		13: `bare " in non-quoted-field`,
	}
	if len(rejected) != len(wantRejected) {
		t.Errorf("rejected lines %v, want %v", rejected, wantRejected)
	}
	for line, want := range wantRejected {
		if !strings.Contains(rejected[line], want) {
			t.Errorf("line %d: reason %q, want it to contain %q", line, rejected[line], want)
		}
	}

	want := map[string]struct {
		country string
		t       demarchev1.CrisisType
		rule    string
		day     int
		deaths  int32
		factor  float64 // the rule's weight (default 1)
	}{
		"2:GIN1001":  {"GN", demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, earlywarning.RuleCoup, 16, 4, 1},
		"3:GIN1002":  {"GN", demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, earlywarning.RuleCoup, 16, 0, 1}, // "junta"
		"9:GIN1001":  {"GN", demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, earlywarning.RuleCoup, 16, 4, 1},
		"10:MLI2001": {"ML", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, earlywarning.RuleNonState, 17, 12, 1},
		"12:KEN3002": {"KE", demarchev1.CrisisType_CRISIS_TYPE_ELECTION_VIOLENCE, earlywarning.RuleElection, 18, 2, 1},
		// Violence against civilians by a political militia (37): its own rule, weighing 1.5.
		"14:CIV4001": {"CI", demarchev1.CrisisType_CRISIS_TYPE_GENERAL, "attacks-on-civilians", 19, 1, 1.5},
	}
	if len(sigs) != len(want) {
		t.Errorf("parsed %d signals %v, want %d", len(sigs), keys(sigs), len(want))
	}
	for k, w := range want {
		s, ok := sigs[k]
		if !ok {
			t.Errorf("no signal %s", k)
			continue
		}
		if s.GetCountryCode() != w.country || s.GetCrisisType() != w.t || s.GetRule() != w.rule || s.GetFatalities() != w.deaths {
			t.Errorf("%s: got %s %s rule %s deaths %d, want %s %s rule %s deaths %d", k, s.GetCountryCode(), s.GetCrisisType().Slug(), s.GetRule(), s.GetFatalities(),
				w.country, w.t.Slug(), w.rule, w.deaths)
		}
		if got := s.GetObservedAt().AsTime(); got != time.Date(2023, 2, w.day, 0, 0, 0, 0, time.UTC) {
			t.Errorf("%s: observed_at %s, want 2023-02-%02d", k, got, w.day)
		}
		factor := w.factor
		if factor == 0 {
			factor = 1
		}
		// The default weighting: 1 + ln(1 + deaths) + 0.5 × √deaths, times the rule's factor.
		if wantW := factor * (1 + math.Log(1+float64(w.deaths)) + 0.5*math.Sqrt(float64(w.deaths))); math.Abs(s.GetWeight()-wantW) > 1e-9 {
			t.Errorf("%s: weight %g, want %g", k, s.GetWeight(), wantW)
		}
	}
	// Notes survive CSV quoting intact: commas, doubled quotes, line breaks.
	if got := sigs["3:GIN1002"].GetSummary(); !strings.Contains(got, "Protest against the junta.\nThousands marched, chanting \"no to the transition\".\nNo injuries.") {
		t.Errorf("summary lost the quoted notes: %q", got)
	}
	if got := sigs["2:GIN1001"].GetSummary(); !strings.Contains(got, `some "mutineers", attempted a coup`) {
		t.Errorf("summary lost the quoted notes: %q", got)
	}
}

func keys(m map[string]*demarchev1.Signal) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

const ucdpHeader = "id,relid,year,active_year,code_status,type_of_violence,conflict_dset_id,conflict_new_id,conflict_name,dyad_dset_id,dyad_new_id,dyad_name,side_a_dset_id,side_a_new_id,side_a,side_b_dset_id,side_b_new_id,side_b,number_of_sources,source_article,source_office,source_date,source_headline,source_original,where_prec,where_coordinates,where_description,adm_1,adm_2,latitude,longitude,geom_wkt,priogrid_gid,country,country_id,region,event_clarity,date_prec,date_start,date_end,deaths_a,deaths_b,deaths_civilians,deaths_unknown,best,high,low\n"

func ucdpRow(id, tov, sideA, sideB, headline, country, date, best string) string {
	cells := make([]string, 47)
	cells[0], cells[5], cells[14], cells[17], cells[22] = id, tov, sideA, sideB, `"`+strings.ReplaceAll(headline, `"`, `""`)+`"`
	cells[25], cells[27], cells[33], cells[35] = "Somewhere", "Province", country, "Africa"
	cells[38], cells[39], cells[44], cells[45], cells[46] = date, date, best, best, best
	return strings.Join(cells, ",") + "\n"
}

func TestUCDPParseRowsLinesAndRules(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(ucdpHeader)                                                                                                                                                    // 1
	b.WriteString(ucdpRow("501", "2", "Dozo", "Fulani", "Herders and farmers clash, many dead", "Mali", "2023-02-16", "7"))                                                      // 2
	b.WriteString(ucdpRow("502", "1", "Government of Sudan", "Government of South Sudan", "Border, \"Abyei\"", "Sudan", "2023-02-16 00:00:00.000", "3"))                         // 3
	b.WriteString(ucdpRow("503", "1", "Government of Myanmar (Burma)", "Military faction (forces of X)", "Army units\nseize the capital", "Myanmar (Burma)", "2023-02-17", "0")) // 4-5
	b.WriteString(ucdpRow("504", "3", "IS", "Civilians", "Attack", "DR Congo (Zaire)", "2023-02-18", "20"))                                                                      // 6
	b.WriteString(ucdpRow("505", "3", "IS", "Civilians", "Attack", "Freedonia", "2023-02-18", "1"))                                                                              // 7
	b.WriteString(ucdpRow("506", "9", "IS", "Civilians", "Attack", "Mali", "2023-02-18", "1"))                                                                                   // 8
	b.WriteString(ucdpRow("507", "3", "IS", "Civilians", "Attack", "Mali", "yesterday", "1"))                                                                                    // 9
	b.WriteString(ucdpRow("", "3", "IS", "Civilians", "Attack", "Mali", "2023-02-18", "1"))                                                                                      // 10
	sigs, rejected := parseAll(t, earlywarning.FormatUCDP, b.String())

	wantRejected := map[int]string{
		7:  `country "Freedonia" is not a known country`,
		8:  `type_of_violence "9" is not 1, 2 or 3`,
		9:  `date_start "yesterday" is not a date`,
		10: "id is empty",
	}
	if len(rejected) != len(wantRejected) {
		t.Errorf("rejected lines %v, want %v", rejected, wantRejected)
	}
	for line, want := range wantRejected {
		if !strings.Contains(rejected[line], want) {
			t.Errorf("line %d: reason %q, want it to contain %q", line, rejected[line], want)
		}
	}
	want := map[string]struct {
		country string
		t       demarchev1.CrisisType
	}{
		"2:501": {"ML", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE},
		"3:502": {"SD", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE},
		"4:503": {"MM", demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE},
		"6:504": {"CD", demarchev1.CrisisType_CRISIS_TYPE_GENERAL},
	}
	if len(sigs) != len(want) {
		t.Errorf("parsed %v, want %d signals", keys(sigs), len(want))
	}
	for k, w := range want {
		s := sigs[k]
		if s.GetCountryCode() != w.country || s.GetCrisisType() != w.t {
			t.Errorf("%s: got %s %s, want %s %s", k, s.GetCountryCode(), s.GetCrisisType().Slug(), w.country, w.t.Slug())
		}
	}
	if got := sigs["6:504"].GetFatalities(); got != 20 {
		t.Errorf("fatalities from best = %d, want 20", got)
	}
}

func TestMissingRequiredColumnIsAClearError(t *testing.T) {
	t.Parallel()
	_, err := earlywarning.NewReader(strings.NewReader("event_id_cnty,event_date,country\nX,2023-01-01,Mali\n"), earlywarning.FormatACLED)
	if !errors.Is(err, earlywarning.ErrBadHeader) || !strings.Contains(err.Error(), "missing column(s) event_type, fatalities") {
		t.Fatalf("err = %v, want ErrBadHeader naming event_type and fatalities", err)
	}
	_, err = earlywarning.NewReader(strings.NewReader(acledHeader), "gdelt")
	if !errors.Is(err, earlywarning.ErrUnknownFormat) {
		t.Fatalf("err = %v, want ErrUnknownFormat", err)
	}
	_, err = earlywarning.NewReader(strings.NewReader(""), earlywarning.FormatUCDP)
	if !errors.Is(err, earlywarning.ErrBadHeader) {
		t.Fatalf("empty file: err = %v, want ErrBadHeader", err)
	}
}

func TestCountryNamesAndCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, iso, want string }{
		{"Democratic Republic of Congo", "", "CD"}, {"DR Congo (Zaire)", "", "CD"}, {"Republic of Congo", "", "CG"},
		{"Ivory Coast", "", "CI"}, {"eSwatini", "", "SZ"}, {"Kingdom of eSwatini (Swaziland)", "", "SZ"},
		{"Russia (Soviet Union)", "", "RU"}, {"Yemen (North Yemen)", "", "YE"}, {"Kosovo", "0", "XK"},
		{"Saint Vincent and the Grenadines", "", "VC"}, {"", "466", "ML"}, {"Guinea", "324", "GN"},
		{"guinea-bissau", "", "GW"}, {"Bosnia and Herzegovina", "", "BA"}, {"Palestine", "", "PS"},
	} {
		got, ok := earlywarning.CountryCode(c.name, c.iso)
		if !ok || got != c.want {
			t.Errorf("CountryCode(%q, %q) = %q, %v; want %q", c.name, c.iso, got, ok, c.want)
		}
		if _, known := demarchev1.RegionOf(got); !known {
			t.Errorf("%s is not known to RegionOf", got)
		}
	}
	if got, ok := earlywarning.CountryCode("Atlantis", "999"); ok {
		t.Errorf("Atlantis mapped to %s", got)
	}
}

// TestImportSummaryCountsEveryRow runs a whole file through Import against a
// recording ingest: exact counts, rejected lines in order.
func TestImportSummaryCountsEveryRow(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	batches := 0
	var finished []string
	ingest := func(ctx context.Context, sigs []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
		if req := earlywarning.ImportRequest(ctx, sigs); req.GetImportId() == "" {
			t.Errorf("a request of the import carries no import id")
		} else if len(req.GetFinishSituations()) > 0 {
			// The import's last request: the situations it fed, no signals.
			finished = append(finished, req.GetFinishSituations()...)
			return &demarchev1.IngestResponse{}, nil
		}
		batches++
		resp := &demarchev1.IngestResponse{}
		for i, s := range sigs {
			st := demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED
			if seen[s.GetSourceId()] {
				st = demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE
			}
			seen[s.GetSourceId()] = true
			resp.Results = append(resp.Results, &demarchev1.IngestResult{Index: int32(i), SourceId: s.GetSourceId(), Status: st})
		}
		return resp, nil
	}
	var progress []int
	var sent [][2]int
	sum, err := earlywarning.ImportWith(context.Background(), strings.NewReader(acledFile()), earlywarning.FormatACLED, ingest, earlywarning.ImportOptions{
		Batch: 2, Progress: func(n int) { progress = append(progress, n) }, Sending: func(n, total int) { sent = append(sent, [2]int{n, total}) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 11 || sum.Accepted != 5 || sum.Duplicates != 1 || len(sum.Rejected) != 5 {
		t.Fatalf("summary read %d accepted %d duplicates %d rejected %d, want 11, 5, 1, 5", sum.Read, sum.Accepted, sum.Duplicates, len(sum.Rejected))
	}
	var lines []int
	for _, r := range sum.Rejected {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[6 7 8 11 13]" {
		t.Errorf("rejected lines %v, want [6 7 8 11 13]", lines)
	}
	// The file is read whole (progress ends at every row), then sent in
	// event-time order: 3 batches of 2, then the last request naming the
	// situations fed.
	if batches != 3 || fmt.Sprint(sent) != "[[2 6] [4 6] [6 6]]" || len(progress) == 0 || progress[len(progress)-1] != 11 {
		t.Errorf("%d batches, sent %v, progress %v, want 3 batches of 2 of 6 signals after reading 11 rows", batches, sent, progress)
	}
	if fmt.Sprint(finished) != "[CI-general GN-unconstitutional-change KE-election-violence ML-intercommunal-violence]" {
		t.Errorf("the import finished %v", finished)
	}
}
