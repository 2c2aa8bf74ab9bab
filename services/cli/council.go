package cli

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// newHorizonScanningCmd records one horizon-scanning briefing of the
// Security Council, which covers several situations at once
// (¶12 "horizon scanning"), on each crisis it names: a council-action
// decision of type horizon-scanning-briefing on every crisis, each naming
// the others (and any situation without a crisis) as covered too. Each is
// recorded once under a key made of the briefing's date and the crisis, so
// running the command again after a failure records only what is missing.
func newHorizonScanningCmd(app *App) *cobra.Command {
	var date, outcome, document, rationale string
	var situations []string
	cmd := &cobra.Command{
		Use:   "horizon-scanning CRISIS-ID CRISIS-ID...",
		Short: "Record one horizon-scanning briefing of the Security Council on each crisis it covered",
		Long: `Record the Security Council's monthly horizon-scanning briefing
(¶12 "horizon scanning"), which covers several situations, as a council-action
decision (type horizon-scanning-briefing) on each crisis named: every crisis
shows the briefing, its date and outcome, and the other situations it covered.
--situation adds a situation the briefing covered that has no crisis.`,
		Example: `  demarche crisis horizon-scanning GN-20261127-K7Q3P ML-20261201-ABCDE --date 2026-12-03 --outcome "members asked for a Sahel update" --rationale "monthly horizon scanning"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			when, err := demarchev1.ParseWhen(date, time.Now())
			if strings.TrimSpace(date) == "" || err != nil {
				return fmt.Errorf("--date: the briefing's date is required (a date YYYY-MM-DD or an RFC 3339 time): %q", date)
			}
			crises := slices.Compact(slices.Sorted(slices.Values(args)))
			if len(crises)+len(situations) < 2 {
				return fmt.Errorf("a horizon-scanning briefing covers several situations: name at least two crises, or a crisis and a --situation")
			}
			api, err := app.api()
			if err != nil {
				return err
			}
			for _, id := range crises {
				others := append(slices.DeleteFunc(slices.Clone(crises), func(c string) bool { return c == id }), situations...)
				req := demarchev1.NewDecisionRequest("", rationale, &demarchev1.CouncilAction{
					Type: demarchev1.CouncilActionKind_COUNCIL_ACTION_KIND_HORIZON_SCANNING_BRIEFING, Date: timestamppb.New(when),
					Outcome: outcome, Document: document, Situations: others})
				key := "horizon-scanning-" + when.UTC().Format("20060102") + "-" + id
				var rec demarchev1.DecisionRecord
				if err := api.do(cmd.Context(), "POST", "/v1/crises/"+url.PathEscape(id)+"/decisions", nil, req, &rec, "Idempotency-Key", key); err != nil {
					return fmt.Errorf("horizon-scanning briefing on %s (recorded on those before it; run again to finish): %w", id, err)
				}
				fmt.Fprintf(app.Out, "recorded decision %d on %s: %s by %s at %s\n", rec.GetNumber(), id, rec.GetKind(), rec.GetPrincipal(), ts(rec.GetDecidedAt()))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&date, "date", "", "the briefing's date, YYYY-MM-DD or RFC 3339 (required)")
	cmd.Flags().StringVar(&outcome, "outcome", "", "what came of it (required)")
	cmd.Flags().StringVar(&document, "document", "", "the Council document's symbol, if any")
	cmd.Flags().StringVar(&rationale, "rationale", "", "why it is recorded (required)")
	cmd.Flags().StringArrayVar(&situations, "situation", nil, "a situation the briefing covered that has no crisis (repeatable)")
	return cmd
}
