package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/presences"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/playbook"
)

func newCrisisCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "crisis",
		Short: "Open, list and inspect crises",
		Long:  "Each crisis is one durable CrisisResponse workflow in Temporal; these commands start it, list crises through Temporal visibility, and query a crisis's state.",
	}
	cmd.AddCommand(newCrisisOpenCmd(app), newCrisisListCmd(app), newCrisisShowCmd(app), newDecideCmd(app), newFiguresCmd(app), newHorizonScanningCmd(app), newLessonsCmd(app))
	cmd.AddCommand(newControlCmds(app)...)
	cmd.AddCommand(newReportCmd(app))
	return cmd
}

// openFlags are the inputs of `crisis open`, named as the user types them.
type openFlags struct {
	id, title, country, crisisType, confidentiality, firstSignal, playbook string
	severity                                                               int32
	drill                                                                  bool
	drillDelay                                                             time.Duration
	drillTimeScale                                                         float64
	shareWith                                                              []string
	leadPresence                                                           string
}

// presenceIDs are the registered field presences' ids (the embedded
// registry's; the gateway checks against the same), for the flag's help.
func presenceIDs() []string {
	r, err := presences.Load("")
	if err != nil {
		return nil
	}
	return r.IDs()
}

// flagOf maps a validated field to the flag that sets it, for error messages.
var flagOf = map[string]string{
	"crisis.id": "--id", "crisis.title": "--title", "crisis.country_code": "--country", "crisis.crisis_type": "--type",
	"crisis.severity": "--severity", "crisis.confidentiality": "--confidentiality", "crisis.first_signal_at": "--first-signal-at",
	"crisis.lead_presence": "--lead-presence", "drill.decision_delay": "--drill-delay", "drill.time_scale": "--drill-time-scale", "playbook": "--playbook",
}

func newCrisisOpenCmd(app *App) *cobra.Command {
	var f openFlags
	cmd := &cobra.Command{
		Use:   "open",
		Short: "Open a crisis and start its response workflow",
		Long: `Open a crisis: validate the input, then start its CrisisResponse workflow
(workflow id "crisis-<crisis id>") with the playbook of its type (or --playbook).
Nothing is started when any input is invalid; the error names each failing flag.

The crisis then waits for people's decisions ("demarche crisis decide ...").
With --drill it runs as an exercise instead: the drill policy takes each pending
decision after --drill-delay, playbook durations are multiplied by
--drill-time-scale, and the crisis is marked as a drill and kept out of real
figures.

Crisis types: ` + strings.Join(demarchev1.CrisisTypeSlugs(), ", ") + `
Confidentiality: ` + strings.Join(demarchev1.ConfidentialitySlugs(), ", "),
		Example: `  demarche crisis open --title "Coup attempt in Conakry" --country GN --type unconstitutional-change --severity 4
  demarche crisis open --title "Transition in Guinea" --country GN --type unconstitutional-change --severity 4 --lead-presence UNOWA
  demarche crisis open --title "Disputed count" --country KE --type election-violence --severity 3 --drill`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := f.input(time.Now())
			if err != nil {
				return err
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			var st demarchev1.CrisisState
			if err := api.do(cmd.Context(), "POST", "/v1/crises", nil, in, &st); err != nil {
				return withFlagNames(err)
			}
			c := st.GetCrisis()
			fmt.Fprintf(app.Out, "opened crisis %s (%s, %s, severity %d, %s) by %s\n", c.GetId(), c.GetCountryCode(), c.GetCrisisType().Slug(), c.GetSeverity(), c.GetConfidentiality().Slug(), c.GetOpenedBy())
			fmt.Fprintf(app.Out, "  workflow: %s  playbook: %s %s\n", crisis.WorkflowID(c.GetId()), st.GetPlaybook(), st.GetPlaybookVersion())
			fmt.Fprintf(app.Out, "  follow it: demarche crisis show %s   |   demarche events tail --crisis %s\n", c.GetId(), c.GetId())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.title, "title", "", "short description of the situation, 1-200 characters (required)")
	fl.StringVar(&f.country, "country", "", "ISO 3166-1 alpha-2 country code, e.g. GN, ML, UA (required)")
	fl.StringVar(&f.crisisType, "type", "", "crisis type: "+strings.Join(demarchev1.CrisisTypeSlugs(), ", ")+" (required)")
	fl.Int32Var(&f.severity, "severity", 0, "severity from 1 (low) to 5 (extreme) (required)")
	fl.StringVar(&f.confidentiality, "confidentiality", "public", "who may see it: "+strings.Join(demarchev1.ConfidentialitySlugs(), ", "))
	fl.StringVar(&f.id, "id", "", "drills only: a name for the drill, its id then DRILL-<your tag>-<name> (a real crisis's id is minted by the platform, e.g. GN-20261127-K7Q3P)")
	fl.StringVar(&f.firstSignal, "first-signal-at", "", "RFC 3339 time of the first warning signal (default: now); starts the warning-to-action clock")
	fl.StringSliceVar(&f.shareWith, "share-with", nil, "partners a restricted or confidential crisis is shared with, e.g. AU,ECOWAS")
	fl.StringVar(&f.leadPresence, "lead-presence", "", "the registered field presence leading on the ground, covering the country: "+strings.Join(presenceIDs(), ", "))
	fl.StringVar(&f.playbook, "playbook", "", "a registered playbook's name (default: the one for --type; see \"demarche playbook list\"; needs the head-of-department role)")
	fl.BoolVar(&f.drill, "drill", false, "run as a drill: decisions taken automatically, time compressed, kept out of real figures (needs the drill-coordinator role)")
	fl.DurationVar(&f.drillDelay, "drill-delay", 2*time.Second, "drill: wait before the drill policy takes each pending decision (1s to 720h)")
	fl.Float64Var(&f.drillTimeScale, "drill-time-scale", 0.000005, "drill: multiply playbook durations by this (0.000005 turns 72h into 1.3s and a month into 13s)")
	return cmd
}

// input turns the flags into a validated workflow input; every problem is
// reported at once, by flag name.
func (f openFlags) input(now time.Time) (*demarchev1.OpenCrisisRequest, error) {
	var parseErrs []*demarchev1.FieldError
	p := crisis.NewCrisisParams{
		ID:          f.id,
		Title:       strings.TrimSpace(f.title),
		CountryCode: strings.ToUpper(strings.TrimSpace(f.country)),
		Severity:    f.severity,
		OpenedBy:    "you", // the gateway puts the credential's subject here
		Drill:       f.drill,
		SharedWith:  f.shareWith,
		// The gateway checks it against the presences registry.
		LeadPresence: strings.ToUpper(strings.TrimSpace(f.leadPresence)),
	}
	if f.crisisType != "" {
		t, err := demarchev1.ParseCrisisType(f.crisisType)
		if err != nil {
			parseErrs = append(parseErrs, &demarchev1.FieldError{Field: "crisis.crisis_type", Reason: reasonOf(err)})
		}
		p.CrisisType = t
	}
	conf, err := demarchev1.ParseConfidentiality(f.confidentiality)
	if err != nil {
		parseErrs = append(parseErrs, &demarchev1.FieldError{Field: "crisis.confidentiality", Reason: reasonOf(err)})
	}
	p.Confidentiality = conf
	if f.firstSignal != "" {
		t, err := time.Parse(time.RFC3339, f.firstSignal)
		if err != nil {
			parseErrs = append(parseErrs, &demarchev1.FieldError{Field: "crisis.first_signal_at", Reason: fmt.Sprintf("%q is not an RFC 3339 time, e.g. 2026-11-27T08:00:00Z", f.firstSignal)})
		} else {
			p.FirstSignalAt = t
		}
	}
	req := &demarchev1.OpenCrisisRequest{Crisis: crisis.NewCrisis(p, now), Playbook: f.playbook}
	if f.drill {
		req.Drill = &demarchev1.DrillSettings{DecisionDelay: durationpb.New(f.drillDelay), TimeScale: f.drillTimeScale}
	}
	if f.playbook != "" {
		if _, err := playbook.Get(f.playbook); err != nil {
			parseErrs = append(parseErrs, &demarchev1.FieldError{Field: "playbook", Reason: err.Error()})
		}
	}
	err = req.Validate()
	var verr *demarchev1.ValidationError
	if err != nil && !errors.As(err, &verr) {
		return nil, err
	}
	if verr == nil && len(parseErrs) == 0 {
		// The gateway mints the id (the one checked here is a stand-in);
		// a drill's chosen name goes as it was typed.
		req.Crisis.OpenedBy, req.Crisis.Id = "", strings.TrimSpace(f.id)
		return req, nil
	}
	merged := &demarchev1.ValidationError{Message: "crisis"}
	merged.Fields = append(merged.Fields, parseErrs...)
	if verr != nil {
		for _, fe := range verr.Fields {
			if !merged.HasField(fe.Field) {
				merged.Fields = append(merged.Fields, fe)
			}
		}
	}
	return nil, withFlagNames(merged)
}

// reasonOf drops the field prefix of a FieldError.
func reasonOf(err error) string {
	var fe *demarchev1.FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}

// withFlagNames renames the fields of crisis open after the flags that set them.
func withFlagNames(err error) error {
	return namedByFlags(err, flagOf, "crisis.", "drill.")
}

// namedByFlags renames validated fields after the flags that set them, e.g.
// "severity (--severity)", dropping the given message prefixes from the name.
func namedByFlags(err error, flags map[string]string, trim ...string) error {
	var verr *demarchev1.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	out := &demarchev1.ValidationError{Message: verr.Message}
	for _, fe := range verr.Fields {
		name := fe.Field
		if flag, ok := flags[name]; ok {
			for _, p := range trim {
				name = strings.TrimPrefix(name, p)
			}
			name += " (" + flag + ")"
		}
		out.Fields = append(out.Fields, &demarchev1.FieldError{Field: name, Reason: fe.Reason})
	}
	return out
}

func newCrisisListCmd(app *App) *cobra.Command {
	var stage, country, ctype string
	var open bool
	// Search filters, passed to GET /v1/crises as they are (the gateway
	// refuses a value it does not understand, naming the parameter).
	search := map[string]*string{}
	searchFlags := []struct{ flag, param, help string }{
		{"text", "q", "only crises whose id or title holds this text (reads each candidate)"},
		{"region", "region", "only crises of this region (africa, americas, asia-pacific, europe, middle-east)"},
		{"severity-min", "severity_min", "only crises of at least this severity"},
		{"severity-max", "severity_max", "only crises of at most this severity"},
		{"status", "status", "open or closed"},
		{"outcome", "outcome", "only closed crises with this outcome (averted, contained, escalated, unresolved)"},
		{"drills", "drills", "false: real crises only; only: drills only"},
		{"opened-from", "opened_from", "only crises opened on or after this day (YYYY-MM-DD, UTC)"},
		{"opened-to", "opened_to", "only crises opened on or before this day (YYYY-MM-DD, UTC)"},
	}
	var limit int
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the crises you may see, newest first",
		Long: `List crises through the gateway: only those your clearance covers (a partner
sees those shared with its organisation). The gateway reads Temporal visibility,
filtered by the workflow's search attributes.

Stages: ` + strings.Join(demarchev1.StageSlugs(), ", "),
		Example: "  demarche crisis list --stage envoy-deployment --country GN",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			q := url.Values{}
			if stage != "" {
				s, err := demarchev1.ParseStage(stage)
				if err != nil {
					return fmt.Errorf("--stage: %s", reasonOf(err))
				}
				q.Set("stage", s.Slug())
			}
			if ctype != "" {
				t, err := demarchev1.ParseCrisisType(ctype)
				if err != nil {
					return fmt.Errorf("--type: %s", reasonOf(err))
				}
				q.Set("type", t.Slug())
			}
			if country != "" {
				if _, ok := demarchev1.RegionOf(strings.ToUpper(country)); !ok {
					return fmt.Errorf("--country: %q is not an ISO 3166-1 alpha-2 country code", country)
				}
				q.Set("country", strings.ToUpper(country))
			}
			if open {
				q.Set("open", "true")
			}
			for param, v := range search {
				if *v != "" {
					q.Set(param, *v)
				}
			}
			rows, err := app.listCrises(cmd.Context(), q, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return app.printJSON(&demarchev1.ListCrisesResponse{Crises: rows})
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "CRISIS\tSTAGE\tCOUNTRY\tTYPE\tSEVERITY\tACCESS\tSTATUS\tSTARTED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.GetCrisisId(), r.GetStage(), r.GetCountry(), r.GetCrisisType(), r.GetSeverity(), r.GetConfidentiality(), r.GetStatus(), ts(r.GetStartedAt()))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(rows) == 0 {
				fmt.Fprintln(app.Out, "(no crisis matches)")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&stage, "stage", "", "only crises in this stage")
	fl.StringVar(&country, "country", "", "only crises in this country (ISO 3166-1 alpha-2)")
	fl.StringVar(&ctype, "type", "", "only crises of this type")
	fl.BoolVar(&open, "open", false, "only crises whose workflow is still running")
	fl.IntVar(&limit, "limit", 100, "at most this many rows (1 to 5000)")
	for _, f := range searchFlags {
		search[f.param] = fl.String(f.flag, "", f.help)
	}
	output.bind(cmd)
	return cmd
}

// newLessonsCmd lists the lessons recorded at closure across the closed
// crises you may see (GET /v1/lessons; never a partner's).
func newLessonsCmd(app *App) *cobra.Command {
	var output outputFlag
	params := map[string]*string{}
	cmd := &cobra.Command{
		Use:     "lessons",
		Short:   "List the lessons recorded at closure across closed crises, most recently closed first",
		Example: "  demarche crisis lessons --type unconstitutional-change --region africa --outcome averted",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range params {
				if *v != "" {
					q.Set(k, *v)
				}
			}
			var out demarchev1.ListLessonsResponse
			if err := api.do(cmd.Context(), "GET", "/v1/lessons", q, nil, &out); err != nil {
				return err
			}
			if asJSON {
				return app.printJSON(&out)
			}
			for _, l := range out.GetLessons() {
				fmt.Fprintf(app.Out, "%s  %s\n  %s · %s (%s) · outcome %s · closed %s\n", l.GetCrisisId(), l.GetTitle(), l.GetCrisisType(), l.GetCountry(),
					l.GetRegion(), l.GetOutcome(), ts(l.GetClosedAt()))
				for _, lesson := range l.GetLessons() {
					fmt.Fprintf(app.Out, "  - %s\n", lesson)
				}
			}
			if len(out.GetLessons()) == 0 {
				fmt.Fprintln(app.Out, "(no lessons match)")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	for _, f := range []struct{ flag, param, help string }{
		{"type", "type", "only crises of this type"},
		{"region", "region", "only crises of this region"},
		{"country", "country", "only crises in this country (ISO 3166-1 alpha-2)"},
		{"outcome", "outcome", "only crises with this outcome (averted, contained, escalated, unresolved)"},
		{"text", "q", "only lessons (or crises' ids or titles) holding this text"},
		{"drills", "drills", "true: include drills' lessons"},
		{"limit", "limit", "at most this many crises (1 to 1000, default 200)"},
	} {
		params[f.param] = fl.String(f.flag, "", f.help)
	}
	output.bind(cmd)
	return cmd
}

func newCrisisShowCmd(app *App) *cobra.Command {
	var output outputFlag
	cmd := &cobra.Command{
		Use:     "show CRISIS-ID",
		Short:   "Show a crisis: current stage and the timeline of stage changes",
		Example: "  demarche crisis show GN-20261127-K7Q3P\n  demarche crisis show GN-20261127-K7Q3P --output json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			st, err := app.crisisState(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return app.printJSON(st)
			}
			printState(app, st)
			return nil
		},
	}
	output.bind(cmd)
	return cmd
}

// listCrises lists through the gateway.
func (a *App) listCrises(ctx context.Context, q url.Values, limit int) ([]*demarchev1.CrisisSummary, error) {
	api, err := a.api()
	if err != nil {
		return nil, err
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out demarchev1.ListCrisesResponse
	if err := api.do(ctx, "GET", "/v1/crises", q, nil, &out); err != nil {
		return nil, err
	}
	return out.GetCrises(), nil
}

// crisisState reads a crisis's state through the gateway.
func (a *App) crisisState(ctx context.Context, id string) (*demarchev1.CrisisState, error) {
	api, err := a.api()
	if err != nil {
		return nil, err
	}
	var st demarchev1.CrisisState
	if err := api.do(ctx, "GET", "/v1/crises/"+url.PathEscape(id), nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func printState(app *App, st *demarchev1.CrisisState) { printStateAt(app.Out, st, time.Now()) }

// printStateAt prints a crisis for people as of now: durations as "2h 14m",
// deadlines as "in 71h 58m", and for every running stage whom it waits for.
func printStateAt(w io.Writer, st *demarchev1.CrisisState, now time.Time) {
	c := st.GetCrisis()
	fmt.Fprintf(w, "crisis    %s\ntitle     %s\ncountry   %s (%s)\ntype      %s\nseverity  %d\naccess    %s\nstage     %s\n",
		c.GetId(), c.GetTitle(), c.GetCountryCode(), c.GetRegion().Slug(), c.GetCrisisType().Slug(), c.GetSeverity(),
		c.GetConfidentiality().Slug(), st.GetCurrentStage().Slug())
	// First: a crisis altered outside Démarche no longer does what the rest says.
	for _, op := range st.GetOutsideOperations() {
		fmt.Fprintf(w, "WARNING   %s\n", crisis.DescribeOutside(op))
	}
	if len(c.GetSharedWith()) > 0 {
		fmt.Fprintf(w, "shared    %s\n", strings.Join(c.GetSharedWith(), ", "))
	}
	if lp := c.GetLeadPresence(); lp != "" {
		fmt.Fprintf(w, "presence  %s (lead field presence)\n", lp)
	}
	if st.GetPlaybook() != "" {
		fmt.Fprintf(w, "playbook  %s (version %s)\n", st.GetPlaybook(), st.GetPlaybookVersion())
	}
	if c.GetDrill() {
		fmt.Fprintln(w, "drill     yes (excluded from real figures)")
	}
	fmt.Fprintf(w, "opened    %s (%s)\n", ts(c.GetOpenedAt()), relative(c.GetOpenedAt(), now))
	if p := c.GetPreviousCrisisId(); p != "" {
		fmt.Fprintf(w, "previous  %s (the situation's previous episode: demarche crisis show %s)\n", p, p)
	}
	if st.GetClosedAt() != nil {
		fmt.Fprintf(w, "closed    %s  outcome %s%s\n", ts(st.GetClosedAt()), st.GetOutcome().Slug(), handedOver(st))
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "\ntimeline:")
	fmt.Fprintln(tw, "  STAGE\tRUN\tSTATUS\tENTERED\tCOMPLETED\tDURATION\tNOTE")
	for _, r := range st.GetTimeline() {
		done, dur := "(running)", "for "+humanDuration(now.Sub(r.GetEnteredAt().AsTime()))
		if r.GetCompletedAt() != nil {
			done, dur = ts(r.GetCompletedAt()), humanDuration(r.GetDuration().AsDuration())
		}
		status := r.GetStatus().Slug()
		if r.GetStatus() == demarchev1.StageStatus_STAGE_STATUS_UNSPECIFIED {
			status = "completed"
			if r.GetCompletedAt() == nil {
				status = "running"
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.GetStage().Slug(), max(r.GetRun(), 1), status, ts(r.GetEnteredAt()), done, dur, r.GetReason())
	}
	_ = tw.Flush() // terminal output: a failed write has no one to tell
	printRunning(w, st, now)
	if ds := st.GetDeadlines(); len(ds) > 0 {
		fmt.Fprintln(w, "\ndeadlines:")
		fmt.Fprintln(tw, "  DEADLINE\tSTAGE\tSTATUS\tAT RISK\tDUE\tLEFT")
		for _, d := range ds {
			left := ""
			if deadlineOpen(d) {
				left = until(d.GetDueAt(), now)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", d.GetName(), d.GetStage().Slug(), d.GetStatus().Slug(), ts(d.GetAtRiskAt()), ts(d.GetDueAt()), left)
		}
		_ = tw.Flush() // terminal output: a failed write has no one to tell
	}
	if ps := st.GetPartners(); len(ps) > 0 {
		fmt.Fprintln(w, "\npartners:")
		for _, p := range ps {
			fmt.Fprintf(w, "  %-12s %s (acknowledged %s by %s)\n", p.GetPartner(), p.GetRole().Slug(), ts(p.GetAcknowledgedAt()), p.GetPrincipal())
		}
	}
	if n := st.GetEngagements(); n > 0 {
		fmt.Fprintf(w, "\ngood-offices engagements: %d (%d public, %d quiet)\n", n, st.GetPublicEngagements(), n-st.GetPublicEngagements())
	}
	if n := st.GetCouncilActions(); n > 0 {
		fmt.Fprintf(w, "\nSecurity Council actions: %d\n", n)
		for _, d := range st.GetDecisions() {
			if d.GetRequest().GetCouncilAction() != nil {
				fmt.Fprintf(w, "  %s\n", crisis.Describe(d.GetRequest()))
			}
		}
	}
	var reports []string
	for _, d := range st.GetDecisions() {
		if d.GetRequest().GetFieldReport() != nil {
			reports = append(reports, fmt.Sprintf("  %s %s (by %s)", ts(d.GetDecidedAt()), crisis.Describe(d.GetRequest()), d.GetPrincipal()))
		}
	}
	if len(reports) > 0 {
		fmt.Fprintf(w, "\nfield reports: %d\n%s\n", len(reports), strings.Join(reports, "\n"))
	}
	if ds := st.GetDecisions(); len(ds) > 0 {
		fmt.Fprintln(w, "\ndecisions:")
		for _, d := range ds {
			auto := ""
			if d.GetAutomatic() {
				auto = " (drill policy)"
			}
			fmt.Fprintf(w, "  %2d %s %-22s by %s%s: %s\n", d.GetNumber(), ts(d.GetDecidedAt()), d.GetKind(), d.GetPrincipal(), auto, d.GetRationale())
		}
	}
	if f := st.GetFigures(); f != nil {
		fmt.Fprintln(w, "\nfigures:")
		action := "none taken"
		if f.GetWarningToAction() != nil {
			action = humanDuration(f.GetWarningToAction().AsDuration()) + " (" + f.GetFirstAction() + ")"
		}
		triaged := "no triage"
		if f.GetWarningToTriage() != nil {
			triaged = humanDuration(f.GetWarningToTriage().AsDuration())
		}
		lead := "none before deployment"
		if f.GetFundingLeadTime() != nil {
			lead = humanDuration(f.GetFundingLeadTime().AsDuration())
		}
		fmt.Fprintf(w, "  warning to first action  %s\n  warning to triage        %s\n  total                    %s\n  decisions                %d\n  engagements              %d\n  council actions          %d\n  deployments              %d with a UN envoy, %d without\n  funding lead time        %s\n  funding disbursed        USD %d\n  deadlines breached       %d\n",
			action, triaged, humanDuration(f.GetTotal().AsDuration()), f.GetDecisions(), f.GetEngagements(), f.GetCouncilActions(),
			f.GetDeploymentsWithEnvoy(), f.GetDeploymentsWithoutEnvoy(), lead, f.GetFundingDisbursedUsd(), f.GetDeadlinesBreached())
		for _, s := range f.GetStageTimes() {
			fmt.Fprintf(w, "  time in %-24s %s\n", s.GetStage().Slug(), humanDuration(s.GetTime().AsDuration()))
		}
	}
}

// deadlineOpen reports whether a deadline still runs.
func deadlineOpen(d *demarchev1.DeadlineState) bool {
	return d.GetStatus() == demarchev1.DeadlineStatus_DEADLINE_STATUS_RUNNING || d.GetStatus() == demarchev1.DeadlineStatus_DEADLINE_STATUS_AT_RISK
}

// printRunning says, for every running stage, how long it has run and whom
// it waits for; then what is pending outside a running stage (closure).
func printRunning(w io.Writer, st *demarchev1.CrisisState, now time.Time) {
	active := st.GetActiveStages()
	if len(active) > 0 {
		fmt.Fprintln(w, "\nrunning:")
	}
	for _, s := range active {
		line := "  " + s.Slug()
		if r := lastRun(st, s); r != nil {
			line += fmt.Sprintf(" (run %d, for %s)", max(r.GetRun(), 1), humanDuration(now.Sub(r.GetEnteredAt().AsTime())))
		}
		fmt.Fprintln(w, line)
		waiting := false
		for _, p := range st.GetPendingDecisions() {
			if p.GetStage() == s {
				fmt.Fprintf(w, "    waiting for: %s\n", pendingLine(p, now))
				waiting = true
			}
		}
		for _, d := range st.GetDeadlines() {
			if d.GetStage() == s && deadlineOpen(d) {
				fmt.Fprintf(w, "    deadline:    %s %s, due %s\n", d.GetName(), d.GetStatus().Slug(), until(d.GetDueAt(), now))
			}
		}
		if !waiting {
			fmt.Fprintln(w, "    waiting for: no decision yet; the stage runs on its own (timers, services)")
		}
	}
	var rest []*demarchev1.PendingDecision
	for _, p := range st.GetPendingDecisions() {
		if !slices.Contains(active, p.GetStage()) {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		fmt.Fprintln(w, "\nwaiting for:")
		for _, p := range rest {
			fmt.Fprintf(w, "  %s\n", pendingLine(p, now))
		}
	}
}

// pendingLine is one pending decision: who, in which role, what, by when.
func pendingLine(p *demarchev1.PendingDecision, now time.Time) string {
	line := fmt.Sprintf("%s [role %s] to decide %s", p.GetWho(), p.GetRole().Slug(), p.GetKind())
	if p.GetDueAt() != nil {
		line += ", due " + until(p.GetDueAt(), now)
	}
	return line
}

// lastRun is a stage's latest run in the timeline.
func lastRun(st *demarchev1.CrisisState, s demarchev1.Stage) *demarchev1.StageRecord {
	var out *demarchev1.StageRecord
	for _, r := range st.GetTimeline() {
		if r.GetStage() == s {
			out = r
		}
	}
	return out
}

// until is a time ahead as "in 71h 58m", or behind as "overdue by 2h 3m".
func until(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	left := t.AsTime().Sub(now)
	if left < 0 {
		return "overdue by " + humanDuration(-left)
	}
	return "in " + humanDuration(left)
}

// relative is a past time as "2h 14m ago" (a future one as "in ...").
func relative(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	if d := now.Sub(t.AsTime()); d >= 0 {
		return humanDuration(d) + " ago"
	}
	return "in " + humanDuration(t.AsTime().Sub(now))
}

// humanDuration writes a duration for people, in its two largest units:
// "2h 14m", "71h 58m" (hours up to a week, as deadlines are set), "12d 3h",
// "14m 5s", "45s"; drills' compressed times below a second as "350ms".
func humanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + humanDuration(-d)
	}
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	d = d.Truncate(time.Second)
	days, hours := d/(24*time.Hour), d/time.Hour
	mins, secs := (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	two := func(a int64, ua string, b int64, ub string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s %d%s", a, ua, b, ub)
	}
	switch {
	case d >= 7*24*time.Hour:
		return two(int64(days), "d", int64((d%(24*time.Hour))/time.Hour), "h")
	case d >= time.Hour:
		return two(int64(hours), "h", int64(mins), "m")
	case d >= time.Minute:
		return two(int64(mins), "m", int64(secs), "s")
	}
	return fmt.Sprintf("%ds", int64(secs))
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format("2006-01-02 15:04:05.000Z")
}

// handedOver is a closed crisis's hand-over, as the closed line ends.
func handedOver(st *demarchev1.CrisisState) string {
	to := st.GetHandOverTo()
	switch {
	case to == demarchev1.HandOverRecipient_HAND_OVER_RECIPIENT_UNSPECIFIED:
		return ""
	case st.GetHandOverPartner() != "":
		return fmt.Sprintf(", handed over to %s (%s)", st.GetHandOverPartner(), demarchev1.EnumWords(to.Descriptor(), to.Number()))
	default:
		return ", handed over to the " + demarchev1.EnumWords(to.Descriptor(), to.Number())
	}
}
