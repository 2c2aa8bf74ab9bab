package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/services/earlywarning"
)

// TestSignalStoreOnTheStack is issue 22's signal store on the real stack,
// through the CLI and the gateway: an imported ACLED file is in the store
// (`warning signals`, with deaths and rule); a backtest of the store equals
// the backtest of the file; ACLED's revision of an event's deaths (162 → 260)
// is a revision, not a duplicate, and shows in the store and in the score's
// explanation; the store survives a restart of the stack. The console's
// scorecard judges the store's signals once they span enough time (the
// shipped synthetic sample before, saying why).
func TestSignalStoreOnTheStack(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	defer func() { s.Stop() }()
	cli := mustCLI(t, s)

	header := "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,interaction,civilian_targeting,iso,region,country,admin1,admin2,location,latitude,longitude,source,notes,fatalities,timestamp\n"
	row := func(id string, day time.Time, deaths int) string {
		return fmt.Sprintf("%s,%s,2009,1,Political violence,Violence against civilians,Attack,Military Forces of Guinea,Civilians (Guinea),17,Civilian targeting,324,Western Africa,Guinea,Conakry,Dixinn,Conakry,9.5,-13.7,Guinee News,Stadium events,%d,1732700000\n",
			id, day.Format(time.DateOnly), deaths)
	}
	first := time.Date(2009, 9, 20, 0, 0, 0, 0, time.UTC)
	write := func(name string, massacre int) string {
		var b strings.Builder
		b.WriteString(header)
		for i := range 10 {
			deaths := i % 4
			if i == 8 {
				deaths = massacre
			}
			b.WriteString(row(fmt.Sprintf("GIN%04d", i), first.AddDate(0, 0, i), deaths))
		}
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	original, revised := write("acled.csv", 162), write("acled-revised.csv", 260)
	if out := cli("warning", "import", "--quiet", "--format", "acled", original); !strings.Contains(out, "10 accepted") || !strings.Contains(out, "0 live, 10 historical") {
		t.Fatalf("import:\n%s", out)
	}

	type stored struct {
		Signal struct {
			SourceID   string `json:"sourceId"`
			Fatalities int    `json:"fatalities"`
			Rule       string `json:"rule"`
			CrisisType string `json:"crisisType"`
		} `json:"signal"`
		Revision int    `json:"revision"`
		Revised  string `json:"revised"`
	}
	signals := func() (int, []stored) {
		t.Helper()
		var page struct {
			Total   int      `json:"total"`
			Signals []stored `json:"signals"`
		}
		out := cli("warning", "signals", "--country", "GN", "--since", "2009-09-01", "--until", "2009-11-01", "--limit", "0", "-o", "json")
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatalf("warning signals -o json: %v\n%s", err, out)
		}
		return page.Total, page.Signals
	}
	total, list := signals()
	if total != 10 || len(list) != 10 || list[8].Signal.Fatalities != 162 || list[8].Signal.Rule == "" || list[8].Signal.SourceID != "acled-GIN0008" {
		t.Fatalf("store: %d signals %+v", total, list)
	}
	if out := cli("warning", "signals", "--country", "GN"); !strings.Contains(out, "acled-GIN0008") || !strings.Contains(out, "162") {
		t.Fatalf("warning signals table:\n%s", out)
	}

	// A backtest of the store equals the backtest of the file (but for the
	// source ids, which an import prefixes with the file's format).
	backtest := func(args ...string) []map[string]any {
		t.Helper()
		var res struct {
			Situations []map[string]any `json:"situations"`
		}
		out := cli(append([]string{"warning", "backtest", "--quiet", "--threshold", "10", "-o", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("backtest: %v\n%s", err, out)
		}
		for _, sit := range res.Situations {
			for _, c := range sit["crossings"].([]any) {
				c := c.(map[string]any)
				c["sourceId"] = strings.TrimPrefix(c["sourceId"].(string), "acled-")
			}
		}
		return res.Situations
	}
	fromFile, fromStore := backtest("--file", original, "--format", "acled"), backtest("--country", "GN")
	if len(fromFile) == 0 || len(fromFile[0]["crossings"].([]any)) == 0 {
		t.Fatalf("the file crosses nowhere: %v", fromFile)
	}
	if !reflect.DeepEqual(fromFile, fromStore) {
		t.Fatalf("backtest of the store differs from the file's:\nfile  %v\nstore %v", fromFile, fromStore)
	}

	// ACLED revises the massacre's deaths: one revision, nine duplicates.
	out := cli("warning", "import", "--quiet", "--format", "acled", "-o", "json", revised)
	var sum struct {
		Accepted, Duplicates, Revised int
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Accepted != 1 || sum.Duplicates != 9 || sum.Revised != 1 {
		t.Fatalf("revised import: %v\n%s", err, out)
	}
	_, list = signals()
	if list[8].Signal.Fatalities != 260 || list[8].Revision != 2 || list[8].Revised != "rev 2: 162→260 deaths" {
		t.Fatalf("revision in the store: %+v", list[8])
	}
	if out := cli("warning", "score", "--country", "GN", "--type", list[8].Signal.CrisisType, "--limit", "0"); !strings.Contains(out, "revised (rev 2: 162→260 deaths)") {
		t.Fatalf("score's explanation lacks the revision:\n%s", out)
	}

	// Ten days of signals are too few to judge the rules on: the console's
	// scorecard says so and judges the shipped sample. Five years of history
	// imported, it judges the store.
	scorecard := func() string {
		t.Helper()
		code, page := consoleGet(t, s.APIURL(), readToken(t, s.TokenFile("analyst")), "/console/warning/scorecard")
		if code != 200 {
			t.Fatalf("scorecard page: %d\n%s", code, page)
		}
		return page
	}
	if page := scorecard(); !strings.Contains(page, "a synthetic sample, not the platform") || !strings.Contains(page, "The signal store&#39;s 10 signals are too few") {
		t.Fatalf("scorecard of a store of ten days:\n%s", page)
	}
	sample, err := filepath.Abs("../../services/earlywarning/evaluate/testdata/sahel-2019-2023-synthetic.csv")
	if err != nil {
		t.Fatal(err)
	}
	if out := cli("warning", "import", "--quiet", "--format", "acled", sample); !strings.Contains(out, "historical") {
		t.Fatalf("import of the sample:\n%s", out)
	}
	defaults := earlywarning.DefaultRules()
	inPage := func(version string) string { return strings.ReplaceAll(version, "+", "&#43;") } // as html/template writes it
	judged := scorecard()
	if strings.Contains(judged, "synthetic sample") || !strings.Contains(judged, "Evaluated on the signals early warning accepted (its signal store)") ||
		!strings.Contains(judged, "observed from 2009-09-20 to 2023-12-31") || !strings.Contains(judged, inPage(defaults.Version)) {
		t.Fatalf("scorecard of a store of five years:\n%s", judged)
	}
	// A rule changed without a restart moves the scorecard: the head of
	// department doubles the default threshold.
	doubled := filepath.Join(t.TempDir(), "doubled.yaml")
	if !strings.Contains(string(defaults.Source), "    default: 25") {
		t.Fatal("the default rules' threshold is not 25")
	}
	if err := os.WriteFile(doubled, []byte(strings.Replace(string(defaults.Source), "    default: 25", "    default: 50", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	doubledRules, err := earlywarning.LoadRules(doubled)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cliAs(t, s, testToken(t, s, "hannah", "head-of-department"), "warning", "rules", "apply", doubled); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	table := func(page string) string {
		i := strings.Index(page, `id="scorecard-table"`)
		j := strings.Index(page[max(i, 0):], "</table>")
		if i < 0 || j < 0 {
			t.Fatalf("no scorecard table:\n%s", page)
		}
		return page[i : i+j]
	}
	moved := scorecard()
	if !strings.Contains(moved, inPage(doubledRules.Version)) || strings.Contains(moved, "synthetic sample") || table(moved) == table(judged) {
		t.Fatalf("the scorecard did not move with the rules (%s → %s):\n%s", defaults.Version, doubledRules.Version, table(moved))
	}

	// The store survives a restart.
	s.Stop()
	s = startStack(t, dir)
	cli = mustCLI(t, s)
	total, list = signals()
	if total != 10 || list[8].Signal.Fatalities != 260 || list[8].Revision != 2 {
		t.Fatalf("after a restart: %d signals, %+v", total, list[8])
	}
}
