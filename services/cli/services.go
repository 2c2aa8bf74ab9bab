package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/gateway"
)

// call sends one request to a domain service through the gateway
// (POST /v1/<service>/<endpoint>), as the identity of the credential.
func (a *App) call(ctx context.Context, subject string, req, resp proto.Message) error {
	api, err := a.api()
	if err != nil {
		return err
	}
	return api.do(ctx, "POST", gateway.ServicePath(subject), nil, req, resp)
}

func newRosterCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "roster", Short: "Search envoys, mediators and standby experts; list bookings",
		Long: "The roster service answers on NATS (demarche.roster.*); these commands are its client. Bookings come only from decisions: appointing an envoy on a crisis (demarche decide envoy-appointment) books the roster, closing the crisis releases it; nobody books or releases by hand."}
	var kind, region string
	var expertise, languages []string
	var searchOut, assignmentsOut, expertsOut outputFlag
	search := &cobra.Command{Use: "search", Short: "Rank available experts for a need", Args: cobra.NoArgs,
		Example: "  demarche roster search --kind senior-envoy --region africa --expertise constitution-making --language fr",
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &demarchev1.RosterSearchRequest{}
			var err error
			if kind != "" {
				if req.Kind, err = demarchev1.ParseExpertKind(kind); err != nil {
					return fmt.Errorf("--kind: %s", reasonOf(err))
				}
			}
			if region != "" {
				if req.Region, err = demarchev1.ParseRegion(region); err != nil {
					return fmt.Errorf("--region: %s", reasonOf(err))
				}
			}
			for _, e := range expertise {
				x, err := demarchev1.ParseExpertise(e)
				if err != nil {
					return fmt.Errorf("--expertise: %s", reasonOf(err))
				}
				req.Expertise = append(req.Expertise, x)
			}
			req.Languages = languages
			var res demarchev1.RosterSearchResponse
			if err := app.call(cmd.Context(), natsrpc.RosterSearch, req, &res); err != nil {
				return err
			}
			return app.render(searchOut, &res, func() error {
				tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tKIND\tSCORE\tWHY")
				for _, c := range res.GetCandidates() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%s\n", c.GetExpert().GetId(), c.GetExpert().GetName(), c.GetExpert().GetKind().Slug(), c.GetScore(), strings.Join(c.GetReasons(), ", "))
				}
				return tw.Flush()
			})
		}}
	searchOut.bind(search)
	search.Flags().StringVar(&kind, "kind", "", "senior-envoy, mediator or standby-expert")
	search.Flags().StringVar(&region, "region", "", "africa, americas, asia-pacific, europe, middle-east")
	search.Flags().StringSliceVar(&expertise, "expertise", nil, "process-design, security-arrangements, constitution-making, gender, power-sharing, wealth-sharing")
	search.Flags().StringSliceVar(&languages, "language", nil, "language codes, e.g. fr,ar")

	var crisisID string
	var drillSpace bool
	assignments := &cobra.Command{Use: "assignments", Short: "List bookings (of one crisis with --crisis; drills' shadow bookings with --drill)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res demarchev1.AssignmentsResponse
			if err := app.call(cmd.Context(), natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{CrisisId: crisisID, Drill: drillSpace}, &res); err != nil {
				return err
			}
			return app.render(assignmentsOut, &res, func() error {
				tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
				fmt.Fprintln(tw, "CRISIS\tROLE\tEXPERT\tRESERVED\tBY")
				for _, a := range res.GetAssignments() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.GetCrisisId(), a.GetRole(), a.GetExpertId(), ts(a.GetReservedAt()), a.GetReservedBy())
				}
				return tw.Flush()
			})
		}}
	assignmentsOut.bind(assignments)
	assignments.Flags().StringVar(&crisisID, "crisis", "", "only this crisis")
	assignments.Flags().BoolVar(&drillSpace, "drill", false, "list the drills' shadow bookings (drills book the same experts apart from real crises)")

	experts := &cobra.Command{Use: "experts", Short: "List the roster", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res demarchev1.ExpertsResponse
			if err := app.call(cmd.Context(), natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &res); err != nil {
				return err
			}
			if asJSON, err := expertsOut.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&res)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tKIND\tREGIONS\tEXPERTISE\tLANGUAGES\tAVAILABLE")
			for _, e := range res.GetExperts() {
				var regions, exp []string
				for _, r := range e.GetRegions() {
					regions = append(regions, r.Slug())
				}
				for _, x := range e.GetExpertise() {
					exp = append(exp, x.Slug())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", e.GetId(), e.GetName(), e.GetKind().Slug(), strings.Join(regions, ","), strings.Join(exp, ","), strings.Join(e.GetLanguages(), ","), e.GetAvailable())
			}
			return tw.Flush()
		}}
	expertsOut.bind(experts)
	cmd.AddCommand(search, assignments, experts)
	return cmd
}

func newFundCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "fund", Short: "Rapid-response funds: balances, ledgers, requests, decisions, disbursements",
		Long: "The funding service answers on NATS (demarche.funding.*); these commands are its client. Crisis decisions (request-funds, decide-funds) call it by themselves."}
	var fund string
	var balanceOut, ledgerOut outputFlag
	balance := &cobra.Command{Use: "balance", Short: "Show fund balances", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res demarchev1.BalanceResponse
			if err := app.call(cmd.Context(), natsrpc.FundingBalance, &demarchev1.FundQuery{Fund: fund}, &res); err != nil {
				return err
			}
			if asJSON, err := balanceOut.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&res)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "FUND\tNAME\tBALANCE USD\tDISBURSED USD\tCONTRIBUTED USD\tCEILING PER CRISIS")
			var broken []string
			for _, f := range res.GetFunds() {
				if f.GetProblem() != "" { // a broken ledger is never summed
					fmt.Fprintf(tw, "%s\t%s\tREFUSED\t-\t-\t%d\n", f.GetFund().GetId(), f.GetFund().GetName(), f.GetFund().GetPerCrisisCeilingUsd())
					broken = append(broken, f.GetProblem())
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", f.GetFund().GetId(), f.GetFund().GetName(), f.GetBalanceUsd(), f.GetDisbursedUsd(),
					f.GetContributedUsd(), f.GetFund().GetPerCrisisCeilingUsd())
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(broken) > 0 {
				return fmt.Errorf("%d fund(s) refused:\n  %s", len(broken), strings.Join(broken, "\n  "))
			}
			return nil
		}}
	balance.Flags().StringVar(&fund, "fund", "", "only this fund")
	balanceOut.bind(balance)
	var ledgerFund string
	ledger := &cobra.Command{Use: "ledger", Short: "Show a fund's append-only ledger", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res demarchev1.LedgerResponse
			if err := app.call(cmd.Context(), natsrpc.FundingLedger, &demarchev1.FundQuery{Fund: ledgerFund}, &res); err != nil {
				return err
			}
			if asJSON, err := ledgerOut.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&res)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "LINE\tSEQ\tAT\tKIND\tAMOUNT USD\tBALANCE AFTER\tCRISIS\tREQUEST\tDONOR\tKEY")
			for _, e := range res.GetEntries() {
				donor := "-"
				if k := e.GetContribution(); k != nil {
					donor = fmt.Sprintf("%s (ref %s, by %s)", k.GetDonor(), k.GetReference(), k.GetContributedBy())
				}
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", e.GetLine(), e.GetSequence(), ts(e.GetAt()), strings.ToLower(strings.TrimPrefix(e.GetKind().String(), "LEDGER_ENTRY_KIND_")),
					e.GetAmountUsd(), e.GetBalanceAfterUsd(), e.GetCrisisId(), e.GetRequestId(), donor, e.GetKey())
			}
			return tw.Flush()
		}}
	ledger.Flags().StringVar(&ledgerFund, "fund", "flexible-financing", "fund id")
	ledgerOut.bind(ledger)
	cmd.AddCommand(balance, ledger, newFundContributeCmd(app))
	return cmd
}

// newFundContributeCmd is "demarche fund contribute": a voluntary
// contribution credited to a fund (¶64 "Voluntary contributions remain essential"),
// by a funding officer or fund manager (the gateway checks the role and
// records who from the credential).
func newFundContributeCmd(app *App) *cobra.Command {
	var call demarchev1.ContributeCall
	k := &demarchev1.VoluntaryContribution{}
	var output outputFlag
	c := &cobra.Command{Use: "contribute", Short: "Credit a voluntary contribution to a fund (funding officers and fund managers)",
		Long: `Credit money a donor gives to a fund: a ledger line (kind contribution: donor,
amount, reference, who recorded it, the balance after) and a record on the global
audit chain. The ledger is kept in USD: convert first. A reference is one
contribution: recording it again changes nothing; the same reference with other
terms is refused. Only funding officers and fund managers may.`,
		Example: `  demarche fund contribute --fund flexible-financing --donor NO --amount 250000 --currency USD --reference NO-2026-PD-17
  demarche fund contribute --fund flexible-financing --donor "World Bank" --amount 40000 --reference WB/SPF/0042`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			call.Contribution = k
			var res demarchev1.ContributeResult
			if err := app.call(cmd.Context(), natsrpc.FundingContribute, &call, &res); err != nil {
				return err
			}
			if asJSON, err := output.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&res)
			}
			e := res.GetEntry()
			again := ""
			if res.GetReplayed() {
				again = " (already recorded: nothing changed)"
			}
			fmt.Fprintf(app.Out, "credited %d %s from %s to %s%s: ledger line %d, balance %d USD; audit record %s (by %s)\n",
				e.GetAmountUsd(), e.GetContribution().GetCurrency(), e.GetContribution().GetDonor(), e.GetFund(), again, e.GetLine(),
				e.GetBalanceAfterUsd(), res.GetRecord().GetEventId(), res.GetRecord().GetPrincipal())
			return nil
		}}
	fl := c.Flags()
	fl.StringVar(&call.Fund, "fund", "", "the fund credited (see demarche fund balance) (required)")
	fl.StringVar(&k.Donor, "donor", "", "who gives: a member state's ISO code (e.g. NO) or an institution's name (e.g. \"World Bank\") (required)")
	fl.Int64Var(&k.Amount, "amount", 0, "the amount, whole units of the currency (required)")
	fl.StringVar(&k.Currency, "currency", demarchev1.LedgerCurrency, "the currency: USD, the ledger's (convert first)")
	fl.StringVar(&k.Reference, "reference", "", "the donor's reference for the transfer; one contribution per reference (required)")
	output.bind(c)
	return c
}
