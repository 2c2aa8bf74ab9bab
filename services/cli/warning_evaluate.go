package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/earlywarning/evaluate"
)

// `demarche warning evaluate`: a backtest judged as forecasts (issue 22
// item 4). The evaluation is services/earlywarning/evaluate; this file reads
// flags and prints the scorecard as a table, JSON or Markdown
// (docs/scorecard.md is its Markdown, see TestScorecardDocIsCurrent).

func newWarningEvaluateCmd(app *App) *cobra.Command {
	var file, rulesPath, output, note string
	var format formatFlag
	var threshold float64
	var regionThresholds []string
	var deaths int
	horizon, step := daysFlag(evaluate.DefaultHorizon), daysFlag(evaluate.DefaultStep)
	var sweep []float64
	var forecasts, quiet bool
	var sel storeFlags
	cmd := &cobra.Command{
		Use:   "evaluate [--file F --format " + formatsSynopsis() + " | --country CC --type T --since D --until D] [--rules R] [--deaths N] [--horizon 30d] [--step 7d]",
		Short: "Judge the rules as forecasts on a historical file, beside two naive baselines",
		Long: `Evaluate the rules as an early-warning forecast, offline, on a conflict-event
file: at each origin (every --step) every situation gets a forecast from the
events observed before it, and the file itself says whether the outcome (at
least --deaths deaths in the --horizon after it) came. The rules are scored
beside two naive baselines, on the same forecasts, side by side:

  escalations  warned in time (hits), missed, false alarms, precision and recall,
               lead times in days;
  forecasts    every situation × origin: hits, misses, false alarms, precision and
               recall, the area under the precision–recall curve (AUPR) over every
               threshold, and the Brier score of a calibrated probability;
  sweep        the rules' precision and recall at multiples of the threshold
               (--sweep), to choose a threshold.

How to read it: a useful rule warns of most escalations (recall) with few false
alarms (precision), early (lead time), and beats both baselines on AUPR (higher
is better) and Brier (lower is better). If "last period's violence" beats the
rules, the rules add nothing to counting the dead.

` + evaluate.Definitions + `

Output: a table for people, --output json for programs (--forecasts adds every
forecast), --output markdown for a scorecard page (docs/scorecard.md is one;
--note adds a paragraph under its title). Progress goes to stderr.

` + formatsHelp(),
		Example: `  demarche warning evaluate --file acled-sahel-2018-2023.csv --format acled
  demarche warning evaluate --file ged.csv --format ucdp --rules my.yaml --deaths 100 --horizon 90d
  demarche warning evaluate --file events.csv --format acled --threshold 15 --sweep 0.5,1,2 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "table", "text", "json", "markdown":
			default:
				return fmt.Errorf("--output: %q is not an output format (allowed: table, json, markdown)", output)
			}
			if file == "" && format != "" {
				return fmt.Errorf("--format: names the format of --file; without --file the signal store is read (--country, --type, --since, --until select its signals)")
			}
			if file != "" && sel.set() {
				return fmt.Errorf("--country, --type, --since, --until: select signals of the store; with --file the file is evaluated (leave one out)")
			}
			rules, err := earlywarning.LoadRules(rulesPath)
			if err != nil {
				return fmt.Errorf("--rules: %w", err)
			}
			thresholds, err := earlywarning.ParseThresholds(regionThresholds)
			if err != nil {
				return fmt.Errorf("--region-threshold: %w", err)
			}
			if why := earlywarning.CheckThreshold(threshold); threshold != 0 && why != "" {
				return fmt.Errorf("--threshold: %s (0: the rules')", why)
			}
			if deaths < 1 || deaths > evaluate.MaxDeaths {
				return fmt.Errorf("--deaths: %d is out of range (allowed: 1 to %d)", deaths, evaluate.MaxDeaths)
			}
			for _, m := range sweep {
				if !(m > 0) {
					return fmt.Errorf("--sweep: %g is not a positive multiple of the threshold", m)
				}
			}
			if forecasts && output != "json" {
				return fmt.Errorf("--forecasts: only with --output json")
			}
			opts := evaluate.Options{Rules: rules, DefaultThreshold: threshold, Thresholds: thresholds, Deaths: deaths,
				Horizon: time.Duration(horizon), Step: time.Duration(step), Sweep: sweep, Forecasts: forecasts}
			var res *evaluate.Result
			if file == "" {
				// No file: the signals early warning accepted, from its store.
				rows, err := storedRows(cmd.Context(), app, &sel)
				if err != nil {
					return err
				}
				file = sel.describe()
				if res, err = evaluate.RunRows(rows, "store", opts); err != nil {
					return fmt.Errorf("evaluate %s: %w", file, err)
				}
			} else {
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
				res, err = evaluate.Run(fh, f, opts)
				if opts.Progress != nil {
					fmt.Fprintln(cmd.ErrOrStderr())
				}
				if err != nil {
					return fmt.Errorf("evaluate %s: %w", file, err)
				}
			}
			switch output {
			case "json":
				return app.printJSON(res)
			case "markdown":
				printScorecardMarkdown(app.Out, file, note, res)
			default:
				printScorecard(app.Out, file, res)
			}
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
	fl.IntVar(&deaths, "deaths", evaluate.DefaultDeaths, "outcome: at least this many deaths in the situation within --horizon")
	fl.Var(&horizon, "horizon", "outcome: days after each forecast in which the deaths are counted (30d, 90d; 1 to 365 days)")
	fl.Var(&step, "step", "days between forecasts (1 to 365 days)")
	fl.Float64SliceVar(&sweep, "sweep", evaluate.DefaultSweep, "multiples of the threshold the sweep table shows")
	fl.BoolVar(&forecasts, "forecasts", false, "with --output json: every forecast (situation, origin, value, alarm, probability)")
	fl.BoolVar(&quiet, "quiet", false, "no progress bar on stderr")
	fl.StringVarP(&output, "output", "o", "table", "table for people, json for programs, markdown for a scorecard page")
	fl.StringVar(&note, "note", "", "with --output markdown: a paragraph under the title (where the data comes from)")
	return cmd
}

// daysFlag is a whole number of days: "30d", "30" or a Go duration in whole
// days ("720h").
type daysFlag time.Duration

func (d *daysFlag) String() string { return fmt.Sprintf("%dd", time.Duration(*d)/(24*time.Hour)) }
func (d *daysFlag) Type() string   { return "days" }
func (d *daysFlag) Set(s string) error {
	s = strings.TrimSpace(s)
	var v time.Duration
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil {
		v = time.Duration(n) * 24 * time.Hour
	} else if v, err = time.ParseDuration(s); err != nil {
		return fmt.Errorf("%q is not a number of days (30d, 90d)", s)
	}
	if v < 24*time.Hour || v > 365*24*time.Hour || v%(24*time.Hour) != 0 {
		return fmt.Errorf("%q is not whole days from 1 to 365", s)
	}
	*d = daysFlag(v)
	return nil
}

// scorecardRows are the side-by-side figures: a title row, then one row per
// figure, one column per predictor.
func scorecardRows(res *evaluate.Result) [][]string {
	head := []string{""}
	for _, p := range res.Predictors {
		head = append(head, p.Title)
	}
	rows := [][]string{head}
	row := func(name string, cell func(p *evaluate.Scorecard) string) {
		r := []string{name}
		for _, p := range res.Predictors {
			r = append(r, cell(p))
		}
		rows = append(rows, r)
	}
	row("alarm when", func(p *evaluate.Scorecard) string { return p.AlarmWhen })
	row("escalations", func(p *evaluate.Scorecard) string { return strconv.Itoa(p.Escalations) })
	row("  warned in time (hits)", func(p *evaluate.Scorecard) string { return strconv.Itoa(p.Hits) })
	row("  missed (of which late)", func(p *evaluate.Scorecard) string { return fmt.Sprintf("%d (%d)", p.Misses, p.Late) })
	row("  false alarms / alarm runs", func(p *evaluate.Scorecard) string { return fmt.Sprintf("%d / %d", p.FalseAlarms, p.AlarmRuns) })
	row("  precision / recall", func(p *evaluate.Scorecard) string { return pct(p.Precision) + " / " + pct(p.Recall) })
	row("  lead time, days: median (min–max)", func(p *evaluate.Scorecard) string {
		lt := p.LeadTime
		if lt.Median == nil {
			return "—"
		}
		return fmt.Sprintf("%.0f (%.0f–%.0f)", *lt.Median, *lt.Min, *lt.Max)
	})
	row("forecasts (situation × origin)", func(*evaluate.Scorecard) string { return "" })
	row("  hits / misses / false alarms", func(p *evaluate.Scorecard) string {
		f := p.Forecasts
		return fmt.Sprintf("%d / %d / %d", f.Hits, f.Misses, f.FalseAlarms)
	})
	row("  precision / recall", func(p *evaluate.Scorecard) string {
		return pct(p.Forecasts.Precision) + " / " + pct(p.Forecasts.Recall)
	})
	row(fmt.Sprintf("  AUPR (random: %.3f)", res.BaseRate), func(p *evaluate.Scorecard) string { return num(p.AUPR, 3) })
	row("  Brier, calibrated (lower is better)", func(p *evaluate.Scorecard) string { return num(p.Brier, 4) })
	return rows
}

// sweepRows are the rules' threshold sweep.
func sweepRows(res *evaluate.Result) [][]string {
	uniform := 0.0
	for _, t := range res.Thresholds {
		if uniform != 0 && t != uniform {
			uniform = -1
			break
		}
		uniform = t
	}
	rows := [][]string{{"× THRESHOLD", "THRESHOLD", "ALARMS", "HITS", "PRECISION", "RECALL"}}
	for _, pt := range res.Sweep {
		abs := "per region"
		if uniform > 0 {
			abs = strconv.FormatFloat(pt.Threshold*uniform, 'g', 4, 64)
		}
		rows = append(rows, []string{strconv.FormatFloat(pt.Threshold, 'g', 4, 64), abs, strconv.Itoa(pt.Alarms), strconv.Itoa(pt.Hits), pct(pt.Precision), pct(pt.Recall)})
	}
	return rows
}

func pct(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100**v)
}

func num(v *float64, digits int) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'f', digits, 64)
}

// scorecardIntro says what was evaluated, how.
func scorecardIntro(name string, res *evaluate.Result) []string {
	return []string{
		fmt.Sprintf("%s (%s): %d rows, %d events from %s to %s in %d situations, %d rejected; rules %s",
			name, res.Format, res.Read, res.Events, res.From.Format(time.DateOnly), res.To.Format(time.DateOnly), len(res.Situations), len(res.Rejected), res.RulesVersion),
		"outcome: " + res.Outcome.Text,
		fmt.Sprintf("forecasts: every %g days from %s to %s: %d origins × %d situations = %d, each from the events before it; the outcome held in %d (base rate %.1f%%)",
			res.StepDays, res.FirstOrigin.Format(time.DateOnly), res.LastOrigin.Format(time.DateOnly), res.Origins, len(res.Situations),
			res.ForecastCount, res.Outcomes, 100*res.BaseRate),
		fmt.Sprintf("calibration: logistic regression of the outcome on ln(1 + value), refitted at each origin on the outcomes known then; %d forecasts calibrated (Brier)", res.Calibrated),
	}
}

func printScorecard(out io.Writer, name string, res *evaluate.Result) {
	for _, l := range scorecardIntro(name, res) {
		fmt.Fprintln(out, l)
	}
	fmt.Fprintln(out)
	printTable(out, scorecardRows(res))
	fmt.Fprintln(out)
	fmt.Fprintln(out, "threshold sweep of the rules (forecasts; AUPR above uses every distinct score):")
	printTable(out, sweepRows(res))
	fmt.Fprintln(out, "\n`demarche warning evaluate --help` defines each figure; --output json has every predictor's precision–recall curve.")
}

func printTable(out io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush() // terminal output: a failed write has no one to tell
}

func printScorecardMarkdown(out io.Writer, name, note string, res *evaluate.Result) {
	fmt.Fprintf(out, "# Scorecard: rules %s\n\n", res.RulesVersion)
	if note != "" {
		fmt.Fprintf(out, "%s\n\n", note)
	}
	for _, l := range scorecardIntro("`"+name+"`", res) {
		fmt.Fprintf(out, "- %s\n", l)
	}
	fmt.Fprintln(out)
	markdownTable(out, scorecardRows(res))
	fmt.Fprintln(out, "\n## Threshold sweep of the rules\n\nPrecision and recall over the forecasts at multiples of the threshold (AUPR above uses every distinct score).")
	fmt.Fprintln(out)
	markdownTable(out, sweepRows(res))
	fmt.Fprintf(out, "\n## Definitions\n\n```\n%s\n```\n", evaluate.Definitions)
}

func markdownTable(out io.Writer, rows [][]string) {
	esc := func(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "|", `\|`) }
	for i, r := range rows {
		cells := make([]string, len(r))
		for j, c := range r {
			cells[j] = esc(c)
			if j == 0 && strings.HasPrefix(c, "  ") {
				cells[j] = "&nbsp;&nbsp;" + cells[j]
			}
		}
		fmt.Fprintf(out, "| %s |\n", strings.Join(cells, " | "))
		if i == 0 {
			fmt.Fprintf(out, "|%s\n", strings.Repeat(" --- |", len(r)))
		}
	}
}
