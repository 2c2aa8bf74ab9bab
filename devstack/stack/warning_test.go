package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

// TestWarningImportOpensACrisisThatUsesRosterAndFunding is issue 4's "done
// when" on the real stack: an ACLED export whose events cross Guinea's
// threshold opens one crisis; its envoy is booked through the roster and its
// money paid through the funding service.
func TestWarningImportOpensACrisisThatUsesRosterAndFunding(t *testing.T) {
	s := startStack(t, t.TempDir())
	defer s.Stop()
	tc := temporalClient(t, s)
	ctx := context.Background()

	var b strings.Builder
	b.WriteString("event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,interaction,civilian_targeting,iso,region,country,admin1,admin2,location,latitude,longitude,source,notes,fatalities,timestamp\n")
	// Twelve days of events up to yesterday: live (inside the 14-day horizon),
	// listed out of order (the newest first): the import applies them in
	// event time, so it crosses on the event a backtest crosses on.
	firstDay := time.Now().UTC().AddDate(0, 0, -12)
	for _, i := range []int{12, 3, 9, 1, 7, 11, 5, 2, 10, 4, 8, 6} {
		day := firstDay.AddDate(0, 0, i-1)
		date := day.Format("2006-01-02")
		if i%2 == 0 {
			date = day.Format("2 January 2006")
		}
		fmt.Fprintf(&b, "GIN%04d,%s,2026,1,Political violence,Battles,Armed clash,Military Forces of Guinea,Mutineers,11,,324,Western Africa,Guinea,Conakry,Kaloum,Conakry,9.5,-13.7,Guinee News,\"Soldiers attempted a coup, \"\"seizing\"\" the radio;\nclashes followed\",20,1732700000\n", i, date)
	}
	b.WriteString("GIN0003," + firstDay.AddDate(0, 0, 2).Format("2006-01-02") + ",2026,1,Political violence,Battles,Armed clash,A,B,11,,324,Western Africa,Guinea,Conakry,Kaloum,Conakry,9.5,-13.7,X,duplicate row,20,1732700000\n")
	b.WriteString("ATL0001,2026-11-13,2026,1,Political violence,Battles,Armed clash,A,B,11,,999,Nowhere,Atlantis,X,Y,Z,0,0,X,unknown country,1,1732700000\n")
	file := filepath.Join(t.TempDir(), "acled.csv")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, s, "warning", "import", "--format", "acled", file)
	if err != nil {
		t.Fatalf("warning import: %v\n%s", err, out)
	}
	for _, want := range []string{"accepted", "duplicate", "Atlantis", "12 live, 0 historical", "crisis opened    GN-"} {
		if !strings.Contains(out, want) {
			t.Fatalf("import summary lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`crisis opened\s+(GN-\d{8}-[A-Z2-7]{5}) \(GN-unconstitutional-change\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("import does not name the crisis it opened:\n%s", out)
	}
	// The crossing, in event time, is the backtest's first crossing of the
	// same file, and the score history is in event-time order.
	out, err = runCLI(t, s, "warning", "backtest", "--file", file, "--format", "acled", "--quiet", "--output", "json")
	if err != nil {
		t.Fatalf("warning backtest: %v\n%s", err, out)
	}
	var bt struct {
		Situations []struct {
			Situation     string    `json:"situation"`
			FirstCrossing time.Time `json:"firstCrossing"`
		} `json:"situations"`
	}
	if err := json.Unmarshal([]byte(out), &bt); err != nil || len(bt.Situations) == 0 || bt.Situations[0].FirstCrossing.IsZero() {
		t.Fatalf("backtest: %v\n%s", err, out)
	}
	out, err = runCLI(t, s, "warning", "score", "--country", "GN", "--type", "unconstitutional-change", "--output", "json")
	if err != nil {
		t.Fatalf("warning score: %v\n%s", err, out)
	}
	var sc struct {
		History []struct {
			At       time.Time `json:"at"`
			Crossing bool      `json:"crossing"`
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &sc); err != nil || len(sc.History) != 12 {
		t.Fatalf("score: %v\n%s", err, out)
	}
	var crossed []time.Time
	for i, p := range sc.History {
		if i > 0 && p.At.Before(sc.History[i-1].At) {
			t.Fatalf("score history out of event-time order at point %d:\n%s", i, out)
		}
		if p.Crossing {
			crossed = append(crossed, p.At)
		}
	}
	if len(crossed) != 1 || !crossed[0].Equal(bt.Situations[0].FirstCrossing) || crossed[0].Equal(sc.History[11].At) {
		t.Fatalf("the import crossed at %v, the backtest at %s (%s)", crossed, bt.Situations[0].FirstCrossing, bt.Situations[0].Situation)
	}

	// Early warning published WarningRaised before the workflow's CrisisOpened:
	// partner delivery does not stall on it. A crisis opened right after is
	// delivered to partners within seconds, nothing is dead-lettered, and the
	// partners service has caught up with the whole stream.
	started := time.Now()
	out, err = runCLI(t, s, "crisis", "open", "--title", "Mutiny in Kati", "--country", "ML",
		"--type", "unconstitutional-change", "--severity", "3")
	if err != nil {
		t.Fatalf("crisis open: %v\n%s", err, out)
	}
	next := openedID(t, out)
	js, err := jetstream.New(natsConn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	// Each partner has its own stream: look in every one.
	delivered := func(subject string) bool {
		for _, org := range partners.DefaultPartnerNames() {
			st, err := js.Stream(ctx, partners.PartnerStream(org))
			if err != nil {
				t.Fatal(err)
			}
			if info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject)); err == nil && len(info.State.Subjects) > 0 {
				return true
			}
		}
		return false
	}
	waitWithin(t, 15*time.Second, "the next crisis delivered to partners", func() bool {
		return delivered("demarche.partner.*.africa.ML." + next + ".crisis_opened")
	})
	t.Logf("partner delivery of %s %v after the import opened a crisis", next, time.Since(started).Round(time.Millisecond))
	_, obs := jsAs(t, s, natsauth.Observer) // the observer reads every consumer's state
	cons, err := obs.Consumer(ctx, eventbus.StreamName, partners.Durable)
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 15*time.Second, "the partners consumer caught up", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	if dlq, err := js.Stream(ctx, eventbus.DeadLetterStreamName); err == nil {
		if info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(eventbus.DeadLetterSubject(partners.Durable))); err == nil && len(info.State.Subjects) > 0 {
			t.Fatalf("partner delivery dead-lettered events: %v", info.State.Subjects)
		}
	}

	id := m[1]
	waitFor(t, func() bool {
		st, err := crisis.State(ctx, tc, id)
		return err == nil && len(st.GetPendingDecisions()) > 0
	})
	st, err := crisis.State(ctx, tc, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.GetCrisis().GetFirstSignalAt().AsTime().Format("2006-01-02"), firstDay.Format("2006-01-02"); got != want {
		t.Fatalf("first_signal_at %s, want the first contributing event's date %s", got, want)
	}
	if st.GetPlaybook() != "unconstitutional-change" || len(st.GetWarnings()) == 0 {
		t.Fatalf("crisis opened by early warning: playbook %s, %d warnings", st.GetPlaybook(), len(st.GetWarnings()))
	}

	cli := mustCLI(t, s)
	pending := func(kind string) {
		t.Helper()
		waitPendingKind(t, tc, id, kind)
	}
	pending("triage")
	cli("crisis", "decide", "triage", id, "--as", "duty", "--rationale", "ACLED pattern", "--assessment", "coup attempt under way")
	pending("good-offices")
	cli("crisis", "decide", "good-offices", id, "--as", "head", "--rationale", "public pressure", "--option", "public-statement")
	pending("envoy-appointment")
	cli("crisis", "decide", "appoint-envoy", id, "--as", "head", "--rationale", "francophone, constitution-making", "--envoy", "env-amara-diallo", "--standby-team", "sb-fatou-sow")
	if out := cli("roster", "assignments", "--crisis", id); !strings.Contains(out, "env-amara-diallo") || !strings.Contains(out, "sb-fatou-sow") {
		t.Fatalf("roster has no booking for the crisis:\n%s", out)
	}
	pending("funding-request")
	cli("crisis", "decide", "request-funds", id, "--as", "desk", "--rationale", "mediation", "--funding-request", "FR-1", "--fund", "peacebuilding-irf", "--amount", "400000", "--purpose", "national dialogue")
	pending("funding-decision")
	cli("crisis", "decide", "decide-funds", id, "--as", "fund-officer", "--rationale", "eligible", "--funding-request", "FR-1", "--approve")
	waitFor(t, func() bool {
		out, err := runCLI(t, s, "fund", "ledger", "--fund", "peacebuilding-irf")
		return err == nil && strings.Contains(out, id) && strings.Contains(out, "9600000")
	})
}
