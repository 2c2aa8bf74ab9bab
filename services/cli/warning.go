package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

func newWarningCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "warning",
		Short: "Early warning: import conflict-event files, report signals, explain scores",
		Long: `Early-warning signals are scored per situation (country + crisis type) over a
rolling window; when a live signal takes a situation's score across its region's
threshold, the situation's open crisis gets the warning, or a new crisis episode
opens (linked to the situation's previous one). Signals older than the live
horizon (default: the window) are historical: scored, never opening a crisis.
import, report, score and dialogue talk to the earlywarning service through the
gateway (POST /v1/signals, GET /v1/situations/{country}/{type}, POST
/v1/earlywarning/dialogue) as the identity of your credential, and so do signals
(the signal store: every accepted signal, its revisions) and backtest and
evaluate without --file (they read the store); rules, and backtest and evaluate
with --file, work on files, offline.`,
	}
	cmd.AddCommand(newWarningImportCmd(app), newWarningReportCmd(app), newWarningScoreCmd(app), newWarningDialogueCmd(app),
		newWarningRulesCmd(app), newWarningBacktestCmd(app), newWarningEvaluateCmd(app), newWarningSignalsCmd(app))
	return cmd
}

func newWarningImportCmd(app *App) *cobra.Command {
	var rulesPath string
	var format formatFlag
	var batch int
	var quiet bool
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "import --format " + formatsSynopsis() + " FILE",
		Short: "Import a conflict-event file (" + strings.Join(earlywarning.Formats(), ", ") + ")",
		Long: `Import a conflict-event file: each row becomes a signal (country, crisis type by
a documented rule, weight 1 + ln(1 + fatalities)), sent in batches to the
earlywarning service. Rows that cannot be read are reported with their line in
the file and never sent; signals seen before (same source and id) are counted as
duplicates, so importing a file again is safe. Signals older than the live
horizon are historical: scored, but they open and signal no crisis. The summary
counts live, historical, duplicate and rejected signals and names the crises the
import opened or signalled. Progress goes to stderr.

` + formatsHelp() + `
Other columns are ignored.`,
		Example: "  demarche warning import --format acled 2023-west-africa.csv\n  demarche warning import --format ucdp GEDEvent_v24_1.csv",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := format.get(args[0])
			if err != nil {
				return err
			}
			if batch < 1 || batch > demarchev1.MaxIngestBatch {
				return fmt.Errorf("--batch: %d is out of range (allowed: 1 to %d)", batch, demarchev1.MaxIngestBatch)
			}
			asJSON, err := output.json()
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
			api, err := app.api()
			if err != nil {
				return err
			}
			var progress func(int)
			if !quiet {
				progress = fileProgressBar(cmd.ErrOrStderr(), file)
			}
			start := time.Now()
			// The file's signals are the importing person's (the gateway refuses
			// any other source): its format stays in each source id.
			source, err := api.signalSource(cmd.Context())
			if err != nil {
				return err
			}
			var sending func(int, int)
			if !quiet {
				// The file is read whole and put in event-time order before the
				// first batch goes: then the bar counts the signals sent.
				sending = func(sent, total int) {
					fmt.Fprintf(cmd.ErrOrStderr(), "\r%s %3d%% %d of %d signals sent in event-time order", progressBar(sent, total, 30), 100*sent/max(total, 1), sent, total)
				}
			}
			sum, err := earlywarning.ImportWith(cmd.Context(), file, f, api.ingest, earlywarning.ImportOptions{Batch: batch, Progress: progress, Sending: sending, Rules: rules, Source: source})
			if progress != nil && sum != nil {
				fmt.Fprintln(cmd.ErrOrStderr())
			}
			if sum != nil && asJSON {
				if jerr := app.printJSON(importJSON(args[0], sum)); jerr != nil {
					return jerr
				}
			} else if sum != nil {
				printImportSummary(app.Out, args[0], sum, time.Since(start))
			}
			if err != nil {
				return fmt.Errorf("import %s: %w", args[0], err)
			}
			return nil
		},
	}
	format.bind(cmd.Flags())
	cmd.Flags().IntVar(&batch, "batch", earlywarning.DefaultBatch, "signals per ingest request")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress on stderr")
	cmd.Flags().StringVar(&rulesPath, "rules", "", "classification rules file (default: the embedded rules)")
	output.bind(cmd)
	return cmd
}

func printImportSummary(out io.Writer, name string, sum *earlywarning.ImportSummary, took time.Duration) {
	fmt.Fprintf(out, "%s: %d rows read, %d accepted, %d duplicates, %d rejected (%s)\n",
		name, sum.Read, sum.Accepted, sum.Duplicates, len(sum.Rejected), took.Round(time.Millisecond))
	fmt.Fprintf(out, "  %d live, %d historical (older than the live horizon: opened and signalled nothing); rules %s\n",
		sum.Live, sum.Historical, sum.RulesVersion)
	if sum.Revised > 0 {
		fmt.Fprintf(out, "  %d of the accepted revise signals imported before (same id, changed content): demarche warning signals shows each revision\n", sum.Revised)
	}
	if len(sum.Crises) == 0 {
		fmt.Fprintln(out, "  crises: none opened or signalled")
	}
	for _, c := range sum.Crises {
		verb := "signalled"
		if c.GetOpened() {
			verb = "opened   "
		}
		fmt.Fprintf(out, "  crisis %s %s (%s): demarche crisis show %s\n", verb, c.GetCrisisId(), c.GetSituation(), c.GetCrisisId())
	}
	for _, r := range sum.Rejected {
		id := ""
		if r.SourceID != "" {
			id = " (" + r.SourceID + ")"
		}
		fmt.Fprintf(out, "  line %d%s: %s\n", r.Line, id, strings.ReplaceAll(r.Reason, "\n", " "))
	}
}

// importJSON is the summary of an import for --output json.
func importJSON(name string, sum *earlywarning.ImportSummary) map[string]any {
	type crisisJSON struct {
		CrisisID  string `json:"crisisId"`
		Opened    bool   `json:"opened"`
		Situation string `json:"situation"`
	}
	crises := []crisisJSON{}
	for _, c := range sum.Crises {
		crises = append(crises, crisisJSON{c.GetCrisisId(), c.GetOpened(), c.GetSituation()})
	}
	type rejected struct {
		Line     int    `json:"line"`
		SourceID string `json:"sourceId,omitempty"`
		Reason   string `json:"reason"`
	}
	rej := []rejected{}
	for _, r := range sum.Rejected {
		rej = append(rej, rejected{r.Line, r.SourceID, r.Reason})
	}
	return map[string]any{"file": name, "read": sum.Read, "accepted": sum.Accepted, "live": sum.Live, "historical": sum.Historical,
		"duplicates": sum.Duplicates, "revised": sum.Revised, "rejected": rej, "crises": crises, "rulesVersion": sum.RulesVersion}
}

// reportFlags are the inputs of `warning report`.
type reportFlags struct {
	source, sourceID, country, crisisType, summary, location, observed string
	category, riskFactor                                               string
	severity, fatalities                                               int32
	weight                                                             float64
}

// reportFlagOf maps a validated signal field to its flag.
var reportFlagOf = map[string]string{
	"source": "--source", "source_id": "--source-id", "country_code": "--country", "crisis_type": "--type",
	"summary": "--summary", "severity": "--severity", "fatalities": "--fatalities", "weight": "--weight",
	"observed_at": "--observed-at", "location": "--location",
}

// signal builds and validates the signal; errors name the flags.
func (f reportFlags) signal(now time.Time) (*demarchev1.Signal, error) {
	ct, err := demarchev1.ParseCrisisType(f.crisisType)
	if f.crisisType == "" {
		err = fmt.Errorf("is required (allowed: %s)", strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("--type: %s", reasonOf(err))
	}
	observed := now
	if f.observed != "" {
		t, err := time.Parse(time.RFC3339, f.observed)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, f.observed); err != nil {
				return nil, fmt.Errorf("--observed-at: %q is neither an RFC 3339 time nor a date (2006-01-02)", f.observed)
			}
		}
		observed = t
	}
	sig := &demarchev1.Signal{
		Source: f.source, SourceId: f.sourceID, CountryCode: strings.ToUpper(f.country), CrisisType: ct,
		ObservedAt: timestamppb.New(observed), Summary: f.summary, Location: f.location,
		Severity: f.severity, Fatalities: f.fatalities, Weight: f.weight, Rule: earlywarning.RuleReported,
	}
	if sig.SourceId == "" {
		sig.SourceId = earlywarning.NewSourceID()
	}
	if f.category != "" || f.riskFactor != "" {
		return f.indicator(sig)
	}
	if sig.Weight == 0 {
		// As for imported events; a reporter's severity s weighs at least s.
		sig.Weight = earlywarning.Weight(f.fatalities)
		if f.severity > 0 {
			sig.Weight = max(sig.Weight, float64(f.severity))
		}
	}
	if err := sig.Validate(); err != nil {
		var verr *demarchev1.ValidationError
		if errors.As(err, &verr) {
			out := &demarchev1.ValidationError{Message: verr.Message}
			for _, fe := range verr.Fields {
				name := fe.Field
				if flag, ok := reportFlagOf[name]; ok {
					name += " (" + flag + ")"
				}
				out.Fields = append(out.Fields, &demarchev1.FieldError{Field: name, Reason: fe.Reason})
			}
			return nil, out
		}
		return nil, err
	}
	return sig, nil
}

// indicator makes sig a signal of a category beyond fatalities (hate
// speech, a human-rights violation, an atrocity risk factor): its rule names
// the category (and risk factor), and the service weighs it by the rules in
// force; the weight set here is the embedded rules' (what the answer shows).
func (f reportFlags) indicator(sig *demarchev1.Signal) (*demarchev1.Signal, error) {
	rules := earlywarning.DefaultRules()
	if f.category == "" {
		return nil, fmt.Errorf("--risk-factor: needs --category (e.g. --category atrocity-risk)")
	}
	if _, ok := rules.Category(f.category); !ok {
		var names []string
		for _, c := range rules.Categories {
			names = append(names, c.Name)
		}
		return nil, fmt.Errorf("--category: %q is not a category of the rules (allowed: %s)", f.category, strings.Join(names, ", "))
	}
	if f.weight != 0 {
		return nil, fmt.Errorf("--weight: a signal of a category is weighed by the rules (categories in `demarche warning rules show`); leave --weight out")
	}
	sig.Rule = f.category
	if f.riskFactor != "" {
		sig.Rule += "/" + f.riskFactor
	}
	if err := rules.WeighIndicator(sig); err != nil {
		return nil, fmt.Errorf("--category/--risk-factor: %s", strings.TrimPrefix(err.Error(), "rule: "))
	}
	if err := sig.Validate(); err != nil {
		return nil, err
	}
	return sig, nil
}

func newWarningReportCmd(app *App) *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report one early-warning signal",
		Long: `Report one signal to the earlywarning service, as yours: its source is your
credential's (person_<subject>), never one you name (a source's own system
publishes on demarche.signals.<source> with its own NATS credential). Its weight is --weight, or
1 + ln(1 + --fatalities), raised to --severity when that is larger; a signal
of a --category (human-rights violation, hate speech, a risk factor of atrocity
crimes) is weighed by the rules' weight for it, not by deaths. The answer
says whether it was accepted, and the crisis it raised or was attached to.

Crisis types: ` + strings.Join(demarchev1.CrisisTypeSlugs(), ", "),
		Example: `  demarche warning report --country GN --type unconstitutional-change \
      --summary "Troops deployed around the presidential palace" --severity 4
  demarche warning report --country GN --type election-violence --category hate-speech \
      --summary "Radio host calls for violence against the opposition's community"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := app.api()
			if err != nil {
				return err
			}
			if f.source == "" {
				if f.source, err = api.signalSource(cmd.Context()); err != nil {
					return err
				}
			}
			sig, err := f.signal(time.Now())
			if err != nil {
				return err
			}
			resp, err := api.ingest(cmd.Context(), []*demarchev1.Signal{sig})
			if err != nil {
				return err
			}
			r := resp.GetResults()[0]
			switch r.GetStatus() {
			case demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED:
				fmt.Fprintf(app.Out, "signal %s/%s accepted (weight %.2f)\n", sig.GetSource(), sig.GetSourceId(), sig.GetWeight())
			case demarchev1.IngestStatus_INGEST_STATUS_DUPLICATE:
				fmt.Fprintf(app.Out, "signal %s/%s was already recorded: nothing changed\n", sig.GetSource(), sig.GetSourceId())
				return nil
			default:
				return fmt.Errorf("signal rejected: %s", r.GetReason())
			}
			if r.GetReason() != "" {
				fmt.Fprintf(app.Out, "  note: %s\n", r.GetReason())
			}
			if r.GetCrisisId() != "" {
				verb := "signalled"
				if r.GetCrisisOpened() {
					verb = "opened"
				}
				fmt.Fprintf(app.Out, "  situation above its threshold: crisis %s %s (demarche crisis show %s)\n", r.GetCrisisId(), verb, r.GetCrisisId())
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", "who reports it: you (default: your credential's source, person_<subject>); the gateway refuses any other")
	fl.StringVar(&f.sourceID, "source-id", "", "the source's own id (default: a new one); the same source and id are recorded once")
	fl.StringVar(&f.country, "country", "", "ISO 3166-1 alpha-2 country code, e.g. GN (required)")
	fl.StringVar(&f.crisisType, "type", "", "crisis type (required)")
	fl.StringVar(&f.summary, "summary", "", "what happened (required)")
	fl.StringVar(&f.location, "location", "", "where")
	fl.StringVar(&f.observed, "observed-at", "", "when it happened, RFC 3339 or 2006-01-02 (default now)")
	fl.Int32Var(&f.severity, "severity", 0, "1 to 5")
	fl.Int32Var(&f.fatalities, "fatalities", 0, "reported deaths")
	fl.Float64Var(&f.weight, "weight", 0, "the signal's weight, above 0 up to 100 (default from --fatalities and --severity)")
	fl.StringVar(&f.category, "category", "", "an indicator beyond fatalities, weighed by the rules, not by deaths: human-rights-violation, hate-speech, atrocity-risk (with --risk-factor)")
	fl.StringVar(&f.riskFactor, "risk-factor", "", "with --category atrocity-risk: the risk factor of atrocity crimes (demarche warning rules show lists them)")
	return cmd
}

func newWarningScoreCmd(app *App) *cobra.Command {
	var country, crisisType string
	var limit int
	var output outputFlag
	cmd := &cobra.Command{
		Use:     "score",
		Short:   "Explain a situation's score: threshold, window and contributing signals",
		Example: "  demarche warning score --country GN --type unconstitutional-change",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ct, err := demarchev1.ParseCrisisType(crisisType)
			if crisisType == "" {
				err = fmt.Errorf("is required (allowed: %s)", strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
			}
			if err != nil {
				return fmt.Errorf("--type: %s", reasonOf(err))
			}
			country = strings.ToUpper(country)
			if _, ok := demarchev1.RegionOf(country); !ok {
				return fmt.Errorf("--country: %q is not an ISO 3166-1 alpha-2 country code (upper case, e.g. GN, ML, UA)", country)
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			var sc demarchev1.ScoreResponse
			err = api.do(cmd.Context(), "GET", "/v1/situations/"+country+"/"+ct.Slug(), nil, nil, &sc)
			if err != nil {
				if errors.Is(err, errs.ErrNotFound) {
					return fmt.Errorf("no signals recorded for %s %s", country, ct.Slug())
				}
				return err
			}
			if asJSON, err := output.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&sc)
			}
			printScore(app.Out, &sc, limit)
			return nil
		},
	}
	cmd.Flags().StringVar(&country, "country", "", "ISO 3166-1 alpha-2 country code (required)")
	cmd.Flags().StringVar(&crisisType, "type", "", "crisis type: "+strings.Join(demarchev1.CrisisTypeSlugs(), ", ")+" (required)")
	cmd.Flags().IntVar(&limit, "limit", 50, "contributing signals to list (0: all)")
	output.bind(cmd)
	return cmd
}

func printScore(out io.Writer, sc *demarchev1.ScoreResponse, limit int) {
	state := "below"
	if sc.GetAboveThreshold() {
		state = "ABOVE"
	}
	pct := 0.0
	if sc.GetThreshold() > 0 {
		pct = 100 * sc.GetScore() / sc.GetThreshold()
	}
	fmt.Fprintf(out, "%s %s (%s): score %.2f, threshold %.2f (%.0f%% of it): %s\n", sc.GetCountryCode(), sc.GetCrisisType().Slug(), sc.GetRegion().Slug(),
		sc.GetScore(), sc.GetThreshold(), pct, state)
	fmt.Fprintf(out, "window: %s ending %s (newest signal); %d signal(s); crossings so far: %d; rules %s\n",
		sc.GetWindow().AsDuration(), ts(sc.GetWindowEnd()), len(sc.GetContributions()), sc.GetCrossings(), sc.GetRulesVersion())
	if sc.GetCrisisId() != "" {
		fmt.Fprintf(out, "crisis: %s, episode %d (first signal %s)", sc.GetCrisisId(), sc.GetEpisodes(), ts(sc.GetFirstSignalAt()))
		if p := sc.GetPreviousCrisisId(); p != "" {
			fmt.Fprintf(out, "; previous episode %s", p)
		}
		fmt.Fprintln(out)
		if sc.GetCrisisClosed() {
			fmt.Fprintf(out, "crisis %s is closed and takes no more signals: live signals that take the score to %.2f open episode %d\n",
				sc.GetCrisisId(), sc.GetNextEpisodeScore(), sc.GetEpisodes()+1)
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WEIGHT\tSHARE\tDEATHS\tRULE\tOBSERVED\tSOURCE\tID\tSUMMARY")
	for i, c := range sc.GetContributions() {
		if limit > 0 && i >= limit {
			fmt.Fprintf(tw, "…\t\t\t\t\t\t\t%d more (--limit 0 lists all)\n", len(sc.GetContributions())-limit)
			break
		}
		share := 0.0
		if sc.GetScore() > 0 {
			share = 100 * c.GetWeight() / sc.GetScore()
		}
		summary := strings.ReplaceAll(c.GetSummary(), "\n", " ")
		if r := []rune(summary); len(r) > 80 {
			summary = string(r[:79]) + "…"
		}
		if c.GetRevised() != "" {
			summary = "revised (" + c.GetRevised() + ") " + summary
		}
		rule := c.GetRule()
		if rule == "" {
			rule = "-" // recorded before rules were kept with signals
		}
		fmt.Fprintf(tw, "%.2f\t%.0f%%\t%d\t%s\t%s\t%s\t%s\t%s\n", c.GetWeight(), share, c.GetFatalities(), rule,
			c.GetObservedAt().AsTime().UTC().Format("2006-01-02 15:04"), c.GetSource(), c.GetSourceId(), summary)
	}
	_ = tw.Flush() // terminal output: a failed write has no one to tell
	printDialogues(out, sc.GetDialogues())
}

// signalSource is the source the gateway stamps this credential's signals
// with (and the only one it accepts from it).
func (c *apiClient) signalSource(ctx context.Context) (string, error) {
	w, err := c.whoami(ctx)
	if err != nil {
		return "", fmt.Errorf("who is sending the signals: %w", err)
	}
	return demarchev1.PersonSource(w.GetSubject()), nil
}

// ingest sends a batch of signals through the gateway (an earlywarning.IngestFunc).
func (c *apiClient) ingest(ctx context.Context, signals []*demarchev1.Signal) (*demarchev1.IngestResponse, error) {
	var resp demarchev1.IngestResponse
	if err := c.do(ctx, "POST", "/v1/signals", nil, earlywarning.ImportRequest(ctx, signals), &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
