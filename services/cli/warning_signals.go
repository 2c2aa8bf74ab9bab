package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// storeFlags select signals of the signal store (GET /v1/signals): warning
// signals, and backtest and evaluate without --file.
type storeFlags struct {
	country, crisisType, since, until string
}

func (f *storeFlags) bind(fl *pflag.FlagSet, what string) {
	fl.StringVar(&f.country, "country", "", what+": ISO 3166-1 alpha-2 country code (default every country)")
	fl.StringVar(&f.crisisType, "type", "", what+": crisis type (default every type): "+strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
	fl.StringVar(&f.since, "since", "", what+": observed at or after, RFC 3339 or 2006-01-02")
	fl.StringVar(&f.until, "until", "", what+": observed before, RFC 3339 or 2006-01-02")
}

func (f *storeFlags) set() bool {
	return f.country != "" || f.crisisType != "" || f.since != "" || f.until != ""
}

// query checks the flags (errors name them) and makes the route's query.
func (f *storeFlags) query() (url.Values, error) {
	q := url.Values{}
	if f.country != "" {
		c := strings.ToUpper(f.country)
		if _, ok := demarchev1.RegionOf(c); !ok {
			return nil, fmt.Errorf("--country: %q is not an ISO 3166-1 alpha-2 country code (e.g. GN, ML, UA)", f.country)
		}
		q.Set("country", c)
	}
	if f.crisisType != "" {
		t, err := demarchev1.ParseCrisisType(f.crisisType)
		if err != nil {
			return nil, fmt.Errorf("--type: %s", reasonOf(err))
		}
		q.Set("type", t.Slug())
	}
	var times [2]time.Time
	for i, p := range []struct{ flag, v string }{{"since", f.since}, {"until", f.until}} {
		if p.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, p.v)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, p.v); err != nil {
				return nil, fmt.Errorf("--%s: %q is neither an RFC 3339 time nor a date (2006-01-02)", p.flag, p.v)
			}
		}
		times[i] = t
		q.Set(p.flag, t.UTC().Format(time.RFC3339Nano))
	}
	if !times[0].IsZero() && !times[1].IsZero() && !times[0].Before(times[1]) {
		return nil, fmt.Errorf("--until: must be after --since")
	}
	return q, nil
}

// describe names the selection for a heading ("the signal store: GN, since 2009-01-01").
func (f *storeFlags) describe() string {
	var parts []string
	for _, p := range []struct{ name, v string }{{"", f.country}, {"", f.crisisType}, {"since ", f.since}, {"until ", f.until}} {
		if p.v != "" {
			parts = append(parts, p.name+p.v)
		}
	}
	if len(parts) == 0 {
		return "the signal store"
	}
	return "the signal store (" + strings.Join(parts, ", ") + ")"
}

// fetch reads the selected signals, page after page (at most max; 0: all).
func (f *storeFlags) fetch(ctx context.Context, app *App, max int) ([]*demarchev1.StoredSignal, int, error) {
	q, err := f.query()
	if err != nil {
		return nil, 0, err
	}
	api, err := app.api()
	if err != nil {
		return nil, 0, err
	}
	var out []*demarchev1.StoredSignal
	total := 0
	for {
		limit := demarchev1.MaxSignalsQueryLimit
		if max > 0 {
			limit = min(limit, max-len(out))
		}
		q.Set("limit", strconv.Itoa(limit))
		var page demarchev1.SignalsPage
		if err := api.do(ctx, "GET", "/v1/signals", q, nil, &page); err != nil {
			return nil, 0, err
		}
		out = append(out, page.GetSignals()...)
		total = int(page.GetTotal())
		if page.GetNext() == "" || (max > 0 && len(out) >= max) {
			return out, total, nil
		}
		q.Set("after", page.GetNext())
	}
}

// signalsOf are the stored signals' signals (a backtest's or evaluation's rows).
func signalsOf(stored []*demarchev1.StoredSignal) []*demarchev1.Signal {
	out := make([]*demarchev1.Signal, len(stored))
	for i, s := range stored {
		out[i] = s.GetSignal()
	}
	return out
}

func newWarningSignalsCmd(app *App) *cobra.Command {
	var sel storeFlags
	var limit int
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "signals [--country CC] [--type T] [--since D] [--until D]",
		Short: "List accepted signals from the signal store: fatalities, rule, revision",
		Long: `List the signals early warning accepted, live or historical, from its signal
store (GET /v1/signals), oldest event first: each signal's latest revision with
its weight, fatalities, the rule that classified it and its revision (2 and up:
the source sent it again under the same id with changed content, e.g. ACLED's
revised fatalities). --since is inclusive, --until exclusive (event time).`,
		Example: "  demarche warning signals --country GN --since 2009-09-01 --until 2009-11-01\n  demarche warning signals --country ML --type intercommunal-violence -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("--limit: %d is negative (0: every signal)", limit)
			}
			stored, total, err := sel.fetch(cmd.Context(), app, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return app.printJSON(&demarchev1.SignalsPage{Signals: stored, Total: int32(total)})
			}
			printStoredSignals(app.Out, stored, total)
			return nil
		},
	}
	sel.bind(cmd.Flags(), "signals")
	cmd.Flags().IntVar(&limit, "limit", 200, "at most this many (0: every signal)")
	output.bind(cmd)
	return cmd
}

func printStoredSignals(out io.Writer, stored []*demarchev1.StoredSignal, total int) {
	if len(stored) == 0 {
		fmt.Fprintln(out, "no signals in the store match")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OBSERVED\tSITUATION\tSOURCE/ID\tWEIGHT\tDEATHS\tRULE\tREV\tSUMMARY")
	for _, s := range stored {
		sig := s.GetSignal()
		rev := strconv.Itoa(int(max(s.GetRevision(), 1)))
		if s.GetRevised() != "" {
			rev = s.GetRevised()
		}
		hist := ""
		if s.GetHistorical() {
			hist = " (historical)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%.2f\t%d\t%s\t%s\t%s%s\n", sig.GetObservedAt().AsTime().UTC().Format(time.DateOnly),
			demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType()), sig.GetSource(), sig.GetSourceId(),
			sig.GetWeight(), sig.GetFatalities(), ruleOrDash(sig.GetRule()), rev, clipped(oneLine(sig.GetSummary()), 60), hist)
	}
	_ = tw.Flush() // terminal output: a failed write has no one to tell
	if total > len(stored) {
		fmt.Fprintf(out, "%d of %d signals shown (--limit 0 for all, or narrow with --country, --type, --since, --until)\n", len(stored), total)
	}
}

func ruleOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clipped cuts s to n characters, marking the cut.
func clipped(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// storedRows reads the selection for a backtest or an evaluation.
func storedRows(ctx context.Context, app *App, sel *storeFlags) (earlywarning.Rows, error) {
	stored, _, err := sel.fetch(ctx, app, 0)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, fmt.Errorf("%s holds no signal that matches", sel.describe())
	}
	return earlywarning.StoredRows(signalsOf(stored)), nil
}
