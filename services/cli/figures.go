package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/demarche/demarche/pkg/apijson"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

func newFiguresCmd(app *App) *cobra.Command {
	var includeDrills bool
	var country string
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "figures",
		Short: "Closure figures of closed crises, drills excluded",
		Long: `The figures the report asks for (¶60 "monitor outcomes, measure impact"), per closed crisis and overall: time from
the first warning signal to the first response action (¶47 "the first steps taken to address it": a
good-offices option or engagement, a Security Council action, a deployment or a
funding approval; triage is kept apart), good-offices engagements, Council
actions, deployments with and without a UN envoy, the funding lead time before
deployment, decisions, money disbursed and deadlines breached; overall, the
share of women among the mediators deployed (envoys and standby experts), from
the roster's optional, self-declared field, never inferred
(¶67 "increasing the number of senior female mediators"). Drills are left out
unless --include-drills.`,
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
			fmt.Fprintln(tw, "CRISIS\tOUTCOME\tWARNING->ACTION\tFIRST ACTION\tWARNING->TRIAGE\tENGAGEMENTS\tCOUNCIL\tDEPLOYED ENVOY/NONE\tFUNDING LEAD\tDECISIONS\tDISBURSED USD\tBREACHES\tDRILL")
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
			var deployed []string // roster ids named in the crises' appointments
			for _, r := range rows {
				st, err := app.crisisState(cmd.Context(), r.GetCrisisId())
				if err != nil || st.GetFigures() == nil {
					continue // closed before figures existed
				}
				f := st.GetFigures()
				deployed = append(deployed, crisis.DeployedExperts(st)...)
				b, err := apijson.Marshal(f)
				if err != nil {
					return fmt.Errorf("crisis %s: figures: %w", r.GetCrisisId(), err)
				}
				all = append(all, figures{CrisisID: r.GetCrisisId(), Outcome: st.GetOutcome().Slug(), Figures: f, JSON: b})
				if asJSON {
					continue
				}
				if f.GetWarningToAction() != nil { // no response action taken: no time to count
					w2a = append(w2a, f.GetWarningToAction().AsDuration())
				}
				usd += f.GetFundingDisbursedUsd()
				breaches += f.GetDeadlinesBreached()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d/%d\t%s\t%d\t%d\t%d\t%v\n", r.GetCrisisId(), st.GetOutcome().Slug(),
					orDash(f.GetWarningToAction()), cmp.Or(f.GetFirstAction(), "-"), orDash(f.GetWarningToTriage()), f.GetEngagements(), f.GetCouncilActions(),
					f.GetDeploymentsWithEnvoy(), f.GetDeploymentsWithoutEnvoy(), orDash(f.GetFundingLeadTime()),
					f.GetDecisions(), f.GetFundingDisbursedUsd(), f.GetDeadlinesBreached(), f.GetDrill())
			}
			women := app.deployedWomen(cmd, deployed)
			if asJSON {
				if all == nil {
					all = []figures{}
				}
				return app.printJSON(map[string]any{"crises": all, "deployedMediators": women})
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(all) == 0 {
				fmt.Fprintln(app.Out, "(no closed crisis with figures)")
				return nil
			}
			median := "none (no response action taken)"
			if len(w2a) > 0 {
				sort.Slice(w2a, func(i, j int) bool { return w2a[i] < w2a[j] })
				median = w2a[len(w2a)/2].Round(time.Second).String()
			}
			fmt.Fprintf(app.Out, "\n%d crises: median warning-to-action %s, disbursed USD %d, deadlines breached %d\n",
				len(all), median, usd, breaches)
			fmt.Fprintf(app.Out, "%s\n", women)
			return nil
		},
	}
	cmd.Flags().BoolVar(&includeDrills, "include-drills", false, "count drills too")
	cmd.Flags().StringVar(&country, "country", "", "only this country")
	output.bind(cmd)
	return cmd
}

// orDash is a figure's duration, or "-" when it was never measured.
func orDash(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().Round(time.Second).String()
}

// deployedWomen is the share of women among the mediators deployed
// (crisis.CountWomenDeployed), or why the roster could not be read.
type deployedWomen struct {
	Deployed    int    `json:"deployed"`
	Declared    int    `json:"declared"`
	Women       int    `json:"women"`
	NotOnRoster int    `json:"notOnRoster,omitempty"`
	Unreadable  string `json:"unreadable,omitempty"`
}

func (w deployedWomen) String() string {
	if w.Unreadable != "" {
		return "women among deployed mediators: the roster could not be read (" + w.Unreadable + ")"
	}
	return crisis.WomenDeployed{Deployed: w.Deployed, Declared: w.Declared, Women: w.Women}.String()
}

func (app *App) deployedWomen(cmd *cobra.Command, deployed []string) deployedWomen {
	var res demarchev1.ExpertsResponse
	if len(deployed) > 0 {
		if err := app.call(cmd.Context(), natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &res); err != nil {
			return deployedWomen{Deployed: len(slices.Compact(slices.Sorted(slices.Values(deployed)))), Unreadable: err.Error()}
		}
	}
	w := crisis.CountWomenDeployed(deployed, res.GetExperts())
	return deployedWomen{Deployed: w.Deployed, Declared: w.Declared, Women: w.Women, NotOnRoster: w.NotOnRoster}
}
