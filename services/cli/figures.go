package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/demarche/demarche/pkg/apijson"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func newFiguresCmd(app *App) *cobra.Command {
	var includeDrills bool
	var country string
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "figures",
		Short: "Closure figures of closed crises, drills excluded",
		Long: `The figures the report asks for (¶60 "monitor outcomes, measure impact"), per closed crisis and overall: time from
the first warning signal to the first action, decisions, money disbursed and
deadlines breached. Drills are left out unless --include-drills.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			q := url.Values{"stage": {demarchev1.Stage_STAGE_CLOSED.Slug()}}
			if country != "" {
				q.Set("country", strings.ToUpper(country))
			}
			if !includeDrills {
				q.Set("drills", "false")
			}
			rows, err := app.listCrises(cmd.Context(), q, 5000)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "CRISIS\tOUTCOME\tWARNING->ACTION\tDECISIONS\tDISBURSED USD\tBREACHES\tDRILL")
			var w2a []time.Duration
			var usd int64
			var breaches int32
			type figures struct {
				CrisisID string                     `json:"crisisId"`
				Outcome  string                     `json:"outcome"`
				Figures  *demarchev1.ClosureFigures `json:"-"`
				JSON     json.RawMessage            `json:"figures"`
			}
			var all []figures
			for _, r := range rows {
				st, err := app.crisisState(cmd.Context(), r.GetCrisisId())
				if err != nil || st.GetFigures() == nil {
					continue // closed before figures existed
				}
				f := st.GetFigures()
				b, err := apijson.Marshal(f)
				if err != nil {
					return fmt.Errorf("crisis %s: figures: %w", r.GetCrisisId(), err)
				}
				all = append(all, figures{CrisisID: r.GetCrisisId(), Outcome: st.GetOutcome().Slug(), Figures: f, JSON: b})
				if asJSON {
					continue
				}
				w2a = append(w2a, f.GetWarningToAction().AsDuration())
				usd += f.GetFundingDisbursedUsd()
				breaches += f.GetDeadlinesBreached()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%v\n", r.GetCrisisId(), st.GetOutcome().Slug(), f.GetWarningToAction().AsDuration().Round(time.Second),
					f.GetDecisions(), f.GetFundingDisbursedUsd(), f.GetDeadlinesBreached(), f.GetDrill())
			}
			if asJSON {
				if all == nil {
					all = []figures{}
				}
				return app.printJSON(map[string]any{"crises": all})
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(w2a) == 0 {
				fmt.Fprintln(app.Out, "(no closed crisis with figures)")
				return nil
			}
			sort.Slice(w2a, func(i, j int) bool { return w2a[i] < w2a[j] })
			fmt.Fprintf(app.Out, "\n%d crises: median warning-to-action %s, disbursed USD %d, deadlines breached %d\n",
				len(w2a), w2a[len(w2a)/2].Round(time.Second), usd, breaches)
			return nil
		},
	}
	cmd.Flags().BoolVar(&includeDrills, "include-drills", false, "count drills too")
	cmd.Flags().StringVar(&country, "country", "", "only this country")
	output.bind(cmd)
	return cmd
}
