package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// Exercises from history (issue 11): a historical file replayed as a drill in
// compressed time. Its signals go to early warning as the exercise's own
// (POST /v1/exercises/{id}/signals, drill coordinators): scored in the
// exercise's situations, they raise drill crises, which follow their
// playbooks with decisions taken by the drill policy (or by people in the
// console), pay from the drill fund and book the shadow roster, and whose
// figures are never counted among real crises'.

func newExerciseCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exercise",
		Short: "Run a past crisis as an exercise: replay a historical file as a drill in compressed time",
	}
	cmd.AddCommand(newExerciseStartCmd(app))
	return cmd
}

var exerciseIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,39}$`)

// exerciseFigures are one drill crisis's figures at the end of an exercise.
type exerciseFigures struct {
	CrisisID    string    `json:"crisisId"`
	Situation   string    `json:"situation"`
	Outcome     string    `json:"outcome"`
	Closed      bool      `json:"closed"`
	FirstSignal time.Time `json:"firstSignal"` // event time
	Crossing    time.Time `json:"crossing"`    // event time: the signal that crossed
	Opened      time.Time `json:"opened"`      // wall time
	// WarningToAction in exercise time: first signal to the crossing (event
	// time) plus opening to the first response action (wall time, as people
	// or the drill policy took it; triage is not one). Comparable with a real
	// crisis's. Empty when no response action was taken.
	WarningToAction string            `json:"warningToAction"`
	StageTimes      map[string]string `json:"stageTimes"`
	Decisions       int32             `json:"decisions"`
	DisbursedUSD    int64             `json:"disbursedUsd"`
	Drill           bool              `json:"drill"`
}

func newExerciseStartCmd(app *App) *cobra.Command {
	var file, rulesPath, id string
	var format formatFlag
	var day, maxGap, decisionDelay, wait time.Duration
	var timeScale float64
	var quiet bool
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "start --file F --format " + formatsSynopsis() + " [--id ID] [--day 1s]",
		Short: "Replay a historical file as a drill; wait for its crises to close and print their figures",
		Long: `Replay a conflict-event file as an exercise: its events are sent in event order,
one day of event time every --day of wall time (gaps capped at --max-gap), to
early warning as the exercise's signals. They are scored apart from live signals
(a situation's window is measured in the file's time) and a crossing opens a
drill crisis whose first signal is the first event of its window. Drill crises
follow their playbooks: the drill policy takes each pending decision after
--decision-delay (people may decide first in the console), playbook deadlines
are multiplied by --time-scale, money comes from the drill fund and people from
the shadow roster. With --wait, the command waits for the exercise's crises to
close and prints their figures: warning-to-action in exercise time (first signal
to the crossing in the file's time, plus opening to the first response action
in real time: triage is not one), time per stage, decisions, money. Drill figures are never counted among
real crises'. Needs the drill-coordinator role.

` + formatsHelp(),
		Example: "  demarche exercise start --file conakry-2009.csv --format acled --id conakry-2009 --day 500ms --wait 10m",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			f, err := format.get(file)
			if err != nil {
				return err
			}
			if file == "" {
				return fmt.Errorf("--file: is required (a %s file)", f)
			}
			if id == "" {
				id = "ex-" + time.Now().UTC().Format("20060102-150405")
			}
			if !exerciseIDPattern.MatchString(id) {
				return fmt.Errorf("--id: %q must be 1-40 letters, digits or '-'", id)
			}
			if day < 0 || maxGap < 0 || wait < 0 {
				return errors.New("--day, --max-gap and --wait may not be negative")
			}
			rules, err := earlywarning.LoadRules(rulesPath)
			if err != nil {
				return fmt.Errorf("--rules: %w", err)
			}
			ex := &demarchev1.Exercise{Id: id, Drill: &demarchev1.DrillSettings{DecisionDelay: durationpb.New(decisionDelay), TimeScale: timeScale}}
			if err := (&demarchev1.IngestRequest{Signals: []*demarchev1.Signal{{}}, Exercise: ex}).Validate(); err != nil {
				return fmt.Errorf("--decision-delay/--time-scale: %w", err)
			}
			fh, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			defer fh.Close()
			batches, rejected, err := exerciseBatches(fh, f, rules)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			if quiet {
				stderr = io.Discard
			}
			ctx := cmd.Context()
			sum := &earlywarning.ImportSummary{RulesVersion: rules.Version}
			var prev time.Time
			sent := 0
			total := 0
			for _, b := range batches {
				total += len(b)
			}
			for i, b := range batches {
				at := b[0].GetObservedAt().AsTime()
				if i > 0 && day > 0 {
					gap := time.Duration(float64(day) * at.Sub(prev).Hours() / 24)
					if maxGap > 0 {
						gap = min(gap, maxGap)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(gap):
					}
				}
				prev = at
				var resp demarchev1.IngestResponse
				if err := api.do(ctx, "POST", "/v1/exercises/"+url.PathEscape(id)+"/signals", nil, &demarchev1.IngestRequest{Signals: b, Exercise: ex}, &resp); err != nil {
					return fmt.Errorf("exercise %s, events of %s: %w", id, at.Format("2006-01-02"), err)
				}
				sent += len(b)
				sum.Accepted += int(resp.GetAccepted())
				sum.Duplicates += int(resp.GetDuplicates())
				for _, r := range resp.GetResults() {
					if r.GetStatus() == demarchev1.IngestStatus_INGEST_STATUS_REJECTED {
						sum.Rejected = append(sum.Rejected, &earlywarning.RowError{SourceID: r.GetSourceId(), Reason: r.GetReason()})
					}
				}
				for _, c := range resp.GetCrises() {
					if c.GetOpened() {
						fmt.Fprintf(stderr, "\n%s: drill crisis %s opened (%s)\n", at.Format("2006-01-02"), c.GetCrisisId(), strings.TrimPrefix(c.GetSituation(), "x-"+id+"."))
					}
				}
				sum.Add(resp.GetCrises())
				fmt.Fprintf(stderr, "\r%s %s %d/%d events", progressBar(sent, total, 30), at.Format("2006-01-02"), sent, total)
			}
			fmt.Fprintln(stderr)
			var opened []string
			for _, c := range sum.Crises {
				if c.GetOpened() {
					opened = append(opened, c.GetCrisisId())
				}
			}
			if !asJSON {
				fmt.Fprintf(app.Out, "exercise %s: %d events replayed (%d rows refused), %d duplicates, %d drill crisis(es) opened: %s\n",
					id, sum.Accepted, len(rejected), sum.Duplicates, len(opened), strings.Join(opened, ", "))
			}
			var figures []exerciseFigures
			if wait > 0 && len(opened) > 0 {
				deadline := time.Now().Add(wait)
				for _, cid := range opened {
					var st *demarchev1.CrisisState
					for {
						st, err = app.crisisState(ctx, cid)
						if err == nil && st.GetClosedAt() != nil {
							break
						}
						if time.Now().After(deadline) {
							break
						}
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(500 * time.Millisecond):
						}
					}
					if st != nil {
						figures = append(figures, figuresOf(st, sum))
					}
				}
			}
			if asJSON {
				crises := []string{}
				crises = append(crises, opened...)
				if figures == nil {
					figures = []exerciseFigures{}
				}
				return app.printJSON(map[string]any{"exercise": id, "events": sum.Accepted, "refusedRows": len(rejected), "crises": crises,
					"figures": figures, "rulesVersion": rules.Version})
			}
			if len(figures) > 0 {
				printExerciseFigures(app.Out, figures)
			}
			for _, f := range figures {
				if !f.Closed {
					return fmt.Errorf("drill crisis %s did not close within --wait %s", f.CrisisID, wait)
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "file", "", "conflict-event file (required)")
	format.bind(fl)
	fl.StringVar(&rulesPath, "rules", "", "classification rules file (default: the embedded rules)")
	fl.StringVar(&id, "id", "", "the exercise's id, 1-40 letters, digits or '-' (default ex-<now>)")
	fl.DurationVar(&day, "day", time.Second, "wall time for one day of event time")
	fl.DurationVar(&maxGap, "max-gap", 5*time.Second, "longest pause between two events (0: no cap)")
	fl.DurationVar(&decisionDelay, "decision-delay", 2*time.Second, "the drill policy takes each pending decision after this")
	fl.Float64Var(&timeScale, "time-scale", 0.0001, "playbook deadlines multiplied by this (0 < scale <= 1)")
	fl.DurationVar(&wait, "wait", 0, "wait this long for the exercise's crises to close, then print their figures (0: do not wait)")
	fl.BoolVar(&quiet, "quiet", false, "no progress on stderr")
	output.bind(cmd)
	return cmd
}

// exerciseBatches reads a file's events in event order, one batch per day of
// event time (split at the ingest limit).
func exerciseBatches(r io.Reader, f earlywarning.Format, rules *earlywarning.Rules) ([][]*demarchev1.Signal, []*earlywarning.RowError, error) {
	rd, err := earlywarning.NewReader(r, f)
	if err != nil {
		return nil, nil, err
	}
	rd.WithRules(rules)
	var sigs []*demarchev1.Signal
	var rejected []*earlywarning.RowError
	for {
		sig, _, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *earlywarning.RowError
		if errors.As(err, &rowErr) {
			rejected = append(rejected, rowErr)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return nil, rejected, errors.New("no event could be read from the file")
	}
	sort.SliceStable(sigs, func(i, j int) bool { return sigs[i].GetObservedAt().AsTime().Before(sigs[j].GetObservedAt().AsTime()) })
	var out [][]*demarchev1.Signal
	var cur []*demarchev1.Signal
	var curDay time.Time
	for _, s := range sigs {
		d := s.GetObservedAt().AsTime().Truncate(24 * time.Hour)
		if len(cur) > 0 && (!d.Equal(curDay) || len(cur) >= demarchev1.MaxIngestBatch) {
			out = append(out, cur)
			cur = nil
		}
		curDay = d
		cur = append(cur, s)
	}
	return append(out, cur), rejected, nil
}

func figuresOf(st *demarchev1.CrisisState, sum *earlywarning.ImportSummary) exerciseFigures {
	c := st.GetCrisis()
	f := exerciseFigures{CrisisID: c.GetId(), Outcome: st.GetOutcome().Slug(), Closed: st.GetClosedAt() != nil, Drill: c.GetDrill(),
		FirstSignal: c.GetFirstSignalAt().AsTime().UTC(), Opened: c.GetOpenedAt().AsTime().UTC(), StageTimes: map[string]string{}}
	for _, t := range sum.Crises {
		if t.GetCrisisId() == c.GetId() {
			f.Situation = t.GetSituation()[strings.Index(t.GetSituation(), ".")+1:] // without the exercise's scope
		}
	}
	if ws := st.GetWarnings(); len(ws) > 0 {
		f.Crossing = ws[0].GetObservedAt().AsTime().UTC()
	}
	if fig := st.GetFigures(); fig != nil {
		// The workflow measures first signal (event time) to the first
		// response action (wall time); take out the wall-clock distance
		// between the crossing in the file and the opening, which the replay
		// compressed away.
		if fig.GetWarningToAction() != nil {
			w2a := fig.GetWarningToAction().AsDuration() - f.Opened.Sub(f.Crossing)
			f.WarningToAction = w2a.Round(time.Second).String()
		}
		for _, s := range fig.GetStageTimes() {
			f.StageTimes[s.GetStage().Slug()] = s.GetTime().AsDuration().Round(time.Millisecond).String()
		}
		f.Decisions = fig.GetDecisions()
		f.DisbursedUSD = fig.GetFundingDisbursedUsd()
	}
	return f
}

func printExerciseFigures(out io.Writer, figs []exerciseFigures) {
	fmt.Fprintln(out, "figures (drills: never counted among real crises; warning-to-action in exercise time):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CRISIS\tOUTCOME\tFIRST SIGNAL\tCROSSING\tWARNING->ACTION\tDECISIONS\tDISBURSED USD\tTIME PER STAGE")
	for _, f := range figs {
		var stages []string
		for _, s := range demarchev1.StageSlugs() {
			if d, ok := f.StageTimes[s]; ok {
				stages = append(stages, s+" "+d)
			}
		}
		outcome := f.Outcome
		if !f.Closed {
			outcome = "still open"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", f.CrisisID, outcome, f.FirstSignal.Format("2006-01-02"), f.Crossing.Format("2006-01-02"),
			f.WarningToAction, f.Decisions, f.DisbursedUSD, strings.Join(stages, ", "))
	}
	_ = tw.Flush() // terminal output: a failed write has no one to tell
}
