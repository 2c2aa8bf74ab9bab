package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// The analyst's offline verbs: read, check and try the rules; backtest a
// threshold on a historical file. None of them touches the platform but
// apply, which puts a file into force on it (through the gateway).

func newWarningRulesCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Read, check and try the early-warning rules (classification, weights, window, thresholds)",
		Long: `The early-warning rules are a versioned YAML file: which ACLED event types,
sub-event types, actors, civilian targeting and fatalities, and which UCDP types
of violence and deaths count for which crisis type with which weight; the
scoring window, decay, live horizon and thresholds per region; the
confidentiality and sharing of the crises early warning opens. The embedded
default documents the format: start from "demarche warning rules show > my.yaml".
The service takes a file with "serve earlywarning --rules", imports with
"warning import --rules"; "warning rules apply" puts a file into force on the
running platform (the head of department), without a restart.`,
	}
	cmd.AddCommand(newWarningRulesShowCmd(app), newWarningRulesValidateCmd(app), newWarningRulesTestCmd(app), newWarningRulesApplyCmd(app))
	return cmd
}

func newWarningRulesShowCmd(app *App) *cobra.Command {
	var summary, active bool
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "show [FILE]",
		Short: "Print the rules (default: the embedded ones; --active: those in force on the platform) with their version",
		Example: "  demarche warning rules show > ew-rules.yaml\n  demarche warning rules show --summary ew-rules.yaml\n" +
			"  demarche warning rules show --active > in-force.yaml",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rules *earlywarning.Rules
			var applied *demarchev1.RulesChanged
			var err error
			switch {
			case active && len(args) > 0:
				return fmt.Errorf("--active: the rules in force on the platform, or FILE, not both")
			case active:
				if rules, applied, err = activeRules(cmd, app); err != nil {
					return err
				}
			default:
				if rules, err = earlywarning.LoadRules(firstArg(args)); err != nil {
					return err
				}
			}
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			if asJSON { // the file as data, with the version it is recorded under
				var doc any
				if err := yaml.Unmarshal(rules.Source, &doc); err != nil {
					return fmt.Errorf("rules: %w", err)
				}
				enc := json.NewEncoder(app.Out)
				enc.SetIndent("", "  ")
				out := map[string]any{"version": rules.Version, "rules": doc}
				if applied != nil {
					out["revision"], out["appliedBy"], out["name"] = applied.GetRevision(), applied.GetAppliedBy(), applied.GetName()
					if at := applied.GetAppliedAt(); at != nil {
						out["appliedAt"] = at.AsTime().UTC().Format(time.RFC3339)
					}
				}
				return enc.Encode(out)
			}
			if summary {
				_, err = io.WriteString(app.Out, rules.Summary())
				return err
			}
			fmt.Fprintf(app.Out, "# rules version %s\n", rules.Version)
			switch {
			case applied != nil && applied.GetRevision() > 0:
				fmt.Fprintf(app.Out, "# in force: applied by %s at %s (%s, revision %d)\n", applied.GetAppliedBy(),
					applied.GetAppliedAt().AsTime().UTC().Format(time.RFC3339), applied.GetName(), applied.GetRevision())
			case applied != nil:
				fmt.Fprintf(app.Out, "# in force: the service's own rules (%s), none applied since it started\n", applied.GetName())
			}
			_, err = app.Out.Write(rules.Source)
			return err
		},
	}
	cmd.Flags().BoolVar(&summary, "summary", false, "a few lines instead of the file")
	cmd.Flags().BoolVar(&active, "active", false, "the rules in force on the platform (GET /v1/warning/rules, as your credential), with who applied them when")
	output.bind(cmd) // table: the YAML file itself
	return cmd
}

func newWarningRulesValidateCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "validate FILE",
		Short:   "Check a rules file: every problem with its line and field",
		Example: "  demarche warning rules validate ew-rules.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			rules, err := earlywarning.LoadRules(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "%s: valid, version %s\n", args[0], rules.Version)
			return nil
		},
	}
}

func newWarningRulesTestCmd(app *App) *cobra.Command {
	var rulesPath string
	var format formatFlag
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "test --format " + formatsSynopsis() + " [--rules R] FILE",
		Short: "Print how each row of a sample file is classified and weighed",
		Long: `Classify every row of a conflict-event file with the rules and print, per row:
its line, id, date, country, crisis type, the rule that chose it and its weight.
Rows that cannot be read are listed with the reason. Nothing is sent.

` + formatsHelp(),
		Example: "  demarche warning rules test --format acled --rules ew-rules.yaml sample.csv",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			f, err := format.get(args[0])
			if err != nil {
				return err
			}
			rules, err := earlywarning.LoadRules(rulesPath)
			if err != nil {
				return fmt.Errorf("--rules: %w", err)
			}
			file, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("FILE: %w", err)
			}
			defer file.Close()
			rows, err := earlywarning.ClassifyFile(file, f, rules)
			if err != nil {
				return err
			}
			if asJSON {
				return app.printJSON(map[string]any{"rulesVersion": rules.Version, "rows": rows})
			}
			fmt.Fprintf(app.Out, "rules %s (%s)\n", rules.Version, rules.Name)
			tw := tabwriter.NewWriter(app.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "LINE\tID\tDATE\tCOUNTRY\tCRISIS TYPE\tRULE\tWEIGHT\tFATALITIES")
			for _, r := range rows {
				if r.Error != "" {
					fmt.Fprintf(tw, "%d\t%s\t\t\t\t\t\t\trejected: %s\n", r.Line, r.SourceID, r.Error)
					continue
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.2f\t%d\n", r.Line, r.SourceID, r.Date, r.CountryCode, r.CrisisType, r.Rule, r.Weight, r.Fatalities)
			}
			return tw.Flush()
		},
	}
	format.bind(cmd.Flags())
	cmd.Flags().StringVar(&rulesPath, "rules", "", "rules file (default: the embedded rules)")
	output.bind(cmd)
	return cmd
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func newWarningBacktestCmd(app *App) *cobra.Command {
	var file, rulesPath string
	var format formatFlag
	var threshold float64
	var regionThresholds []string
	var followUp time.Duration
	var falseAlarm int
	var quiet, series bool
	var output outputFlag
	var sel storeFlags
	cmd := &cobra.Command{
		Use:   "backtest [--file F --format " + formatsSynopsis() + " | --country CC --type T --since D --until D] [--rules R] [--threshold N]",
		Short: "Replay a historical file in event time: when would each situation have crossed, how early",
		Long: `Replay a conflict-event file through the rules in event time, as early warning
would have scored it live, without touching the platform. Per situation:
  crossing     an event takes the score from below the threshold to at or above it
               (it must fall below again before the next crossing counts);
  peak         the day with the most fatalities;
  lead time    the peak day minus the first crossing at or before it (negative: the
               first crossing came after the peak);
  false alarm  a crossing followed by fewer than --false-alarm-fatalities deaths in
               the situation within --follow-up after it.
Without --file, the signals early warning accepted are replayed from its signal
store (GET /v1/signals: --country, --type, --since, --until select them), as
they were classified when accepted; --rules then gives the window, decay and
thresholds. Progress goes to stderr; --output json for programs.

` + formatsHelp(),
		Example: "  demarche warning backtest --file acled-guinea-2009.csv --format acled --threshold 20\n  demarche warning backtest --country GN --since 2009-01-01 --until 2010-01-01",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			if file == "" && format != "" {
				return fmt.Errorf("--format: names the format of --file; without --file the signal store is read (--country, --type, --since, --until select its signals)")
			}
			if file != "" && sel.set() {
				return fmt.Errorf("--country, --type, --since, --until: select signals of the store; with --file the file is replayed (leave one out)")
			}
			rules, err := earlywarning.LoadRules(rulesPath)
			if err != nil {
				return fmt.Errorf("--rules: %w", err)
			}
			thresholds, err := earlywarning.ParseThresholds(regionThresholds)
			if err != nil {
				return fmt.Errorf("--region-threshold: %w", err)
			}
			if threshold < 0 {
				return fmt.Errorf("--threshold: %g is negative (0: the rules')", threshold)
			}
			if why := earlywarning.CheckThreshold(threshold); threshold != 0 && why != "" {
				return fmt.Errorf("--threshold: %s", why)
			}
			opts := earlywarning.BacktestOptions{Rules: rules, DefaultThreshold: threshold, Thresholds: thresholds,
				FollowUp: followUp, FalseAlarmFatalities: falseAlarm, Series: series}
			if file == "" {
				// No file: the signals early warning accepted, from its store.
				rows, err := storedRows(cmd.Context(), app, &sel)
				if err != nil {
					return err
				}
				res, err := earlywarning.BacktestRows(rows, opts)
				if err != nil {
					return fmt.Errorf("backtest %s: %w", sel.describe(), err)
				}
				if asJSON {
					return app.printJSON(res)
				}
				printBacktest(app.Out, sel.describe(), res)
				return nil
			}
			f, err := format.get(file)
			if err != nil {
				return err
			}
			fh, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			defer fh.Close()
			if !quiet {
				opts.Progress = fileProgressBar(cmd.ErrOrStderr(), fh)
			}
			res, err := earlywarning.Backtest(fh, f, opts)
			if opts.Progress != nil {
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if err != nil {
				return fmt.Errorf("backtest %s: %w", file, err)
			}
			if asJSON {
				return app.printJSON(res)
			}
			printBacktest(app.Out, file, res)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "file", "", "conflict-event file (default: the signals early warning accepted, from its store)")
	format.bind(fl)
	sel.bind(fl, "without --file, the store's signals")
	fl.StringVar(&rulesPath, "rules", "", "rules file (default: the embedded rules)")
	fl.Float64Var(&threshold, "threshold", 0, "threshold for every region (default: the rules')")
	fl.StringArrayVar(&regionThresholds, "region-threshold", nil, "a region's own threshold, region=score (repeatable)")
	fl.DurationVar(&followUp, "follow-up", 30*24*time.Hour, "false alarm: how long after a crossing deaths are counted")
	fl.IntVar(&falseAlarm, "false-alarm-fatalities", 10, "false alarm: fewer deaths than this within --follow-up")
	fl.BoolVar(&quiet, "quiet", false, "no progress bar on stderr")
	fl.BoolVar(&series, "series", false, "with --output json: each situation's score after every event")
	output.bind(cmd)
	return cmd
}

// fileProgressBar draws a bar of how far into the file reading is and the rows
// read so far, at most a few times a second (warning import and backtest).
func fileProgressBar(w io.Writer, f *os.File) func(int) {
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	var last time.Time
	return func(read int) {
		if time.Since(last) < 150*time.Millisecond {
			return
		}
		last = time.Now()
		pct := int64(100)
		if pos, err := f.Seek(0, io.SeekCurrent); err == nil && size > 0 {
			pct = pos * 100 / size
		}
		fmt.Fprintf(w, "\r%s %3d%% %d rows", progressBar(int(pct), 100, 30), pct, read)
	}
}

func printBacktest(out io.Writer, name string, res *earlywarning.BacktestResult) {
	fmt.Fprintf(out, "%s: %d rows, %d events from %s to %s, %d rejected; rules %s\n", name, res.Read, res.Events,
		res.From.Format("2006-01-02"), res.To.Format("2006-01-02"), len(res.Rejected), res.RulesVersion)
	fmt.Fprintf(out, "false alarm: a crossing followed by fewer than %d deaths within %s\n", res.FalseAlarmFatalities, res.FollowUp)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITUATION\tTHRESHOLD\tEVENTS\tDEATHS\tMAX SCORE\tCROSSINGS\tFIRST CROSSING\tPEAK DAY (DEATHS)\tLEAD TIME\tFALSE ALARMS")
	for _, s := range res.Situations {
		first, lead := "—", "—"
		if s.FirstCrossing != nil {
			first = s.FirstCrossing.Format("2006-01-02")
		}
		if s.LeadTime != nil {
			lead = earlywarning.Days(*s.LeadTime)
		}
		peak := "—"
		if s.PeakFatalities > 0 {
			peak = fmt.Sprintf("%s (%d)", s.PeakDay.Format("2006-01-02"), s.PeakFatalities)
		}
		fmt.Fprintf(tw, "%s\t%g\t%d\t%d\t%.1f\t%d\t%s\t%s\t%s\t%d\n", s.Situation, s.Threshold, s.Events, s.Fatalities, s.MaxScore,
			len(s.Crossings), first, peak, lead, s.FalseAlarms)
	}
	_ = tw.Flush() // terminal output: a failed write has no one to tell
}

func newWarningRulesApplyCmd(app *App) *cobra.Command {
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Put a rules file into force on the running platform, without a restart (head of department)",
		Long: `Check FILE exactly as "warning rules validate" does (a refused file is never
sent: every problem with its line and field), then send it through the gateway
(POST /v1/warning/rules) as your credential. Only the head of department may.
Early warning validates it again, keeps it in the EARLYWARNING_RULES bucket
(every version), records the change on the audit trail's global chain (event
type rules-changed: old and new version, the file's SHA-256, who, when), and
re-scores every situation under the new version: a situation the new rules
take across its threshold raises its warning as any crossing does. Applied
rules replace the service's --rules file and scoring flags until rules are
applied again; the same version as the one in force changes nothing (its audit
record is sent again: an apply the trail did not record is completed so).`,
		Example: "  demarche warning rules validate ew-rules.yaml\n  demarche warning rules apply ew-rules.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("rules: %w", err)
			}
			rules, err := earlywarning.ParseRules(args[0], data)
			if err != nil {
				return err // refused here: nothing sent, nothing changed
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			var ch demarchev1.RulesChanged
			if err := api.do(cmd.Context(), "POST", "/v1/warning/rules", nil,
				&demarchev1.ApplyRulesRequest{Rules: data, Name: filepath.Base(args[0])}, &ch); err != nil {
				return err
			}
			if asJSON {
				return app.printJSON(&ch)
			}
			if ch.GetUnchanged() {
				fmt.Fprintf(app.Out, "rules %s are already in force (revision %d): nothing changed\n", ch.GetVersion(), ch.GetRevision())
				return nil
			}
			fmt.Fprintf(app.Out, "rules %s in force (revision %d), replacing %s\n", ch.GetVersion(), ch.GetRevision(), ch.GetPreviousVersion())
			fmt.Fprintf(app.Out, "  applied by %s at %s; sha256 %s\n", ch.GetAppliedBy(), ch.GetAppliedAt().AsTime().UTC().Format(time.RFC3339), ch.GetDigest())
			fmt.Fprintf(app.Out, "  re-scored %d situation(s): %d crossed their threshold, %d fell below\n", ch.GetSituations(), ch.GetCrossings(), ch.GetFellBelow())
			fmt.Fprintf(app.Out, "  recorded on the audit trail (global chain, rules-changed)\n")
			if rules.Version != ch.GetVersion() {
				return fmt.Errorf("the platform put %s into force, not %s", ch.GetVersion(), rules.Version)
			}
			return nil
		},
	}
	output.bind(cmd)
	return cmd
}

// activeRules asks the platform for the rules in force.
func activeRules(cmd *cobra.Command, app *App) (*earlywarning.Rules, *demarchev1.RulesChanged, error) {
	api, err := app.api()
	if err != nil {
		return nil, nil, err
	}
	var a demarchev1.ActiveRules
	if err := api.do(cmd.Context(), "GET", "/v1/warning/rules", nil, nil, &a); err != nil {
		return nil, nil, err
	}
	name := a.GetChange().GetName()
	if name == "" {
		name = "active"
	}
	rules, err := earlywarning.ParseRules(name, a.GetRules())
	if err != nil {
		return nil, nil, fmt.Errorf("the rules in force do not parse here (a newer platform?): %w", err)
	}
	return rules, a.GetChange(), nil
}
