package cli

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// decisionVerb is the CLI side of one decision kind: its verb is the kind's
// name (demarchev1.DecisionKinds), bind adds its flags and returns the builder
// of the decision from them.
type decisionVerb struct {
	kind, short, example string
	// aliases are the verbs of earlier releases, still accepted.
	aliases []string
	bind    func(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error)
}

// decisionVerbs has one verb per decision kind, in the schema's order; a test
// checks the names match the schema.
var decisionVerbs = []decisionVerb{
	{kind: "triage", short: "Confirm the warning calls for a response (ends the warning stage)", bind: bindTriage},
	{kind: "good-offices", short: "Choose the good-offices option (ends good offices)", bind: bindGoodOffices,
		example: `  demarche crisis decide good-offices GN-20261127-K7Q3P --option demarche --rationale "junta open to talks"`},
	{kind: "fact-finding-mandate", aliases: []string{"mandate"}, short: "Mandate the fact-finding mission (terms, mandating body, team, report deadline)", bind: bindMandate},
	{kind: "fact-finding-report", aliases: []string{"report"}, short: "Record the fact-finding report (ends fact-finding)", bind: bindReport},
	{kind: "envoy-appointment", aliases: []string{"appoint-envoy"}, short: "Appoint the special envoy and the standby team, booked on the roster (the 72h clock runs from the stage's start)", bind: bindAppointment},
	{kind: "standby-team-deployed", aliases: []string{"deployed"}, short: "Confirm the standby team is deployed (ends envoy deployment)", bind: bindDeployed},
	{kind: "funding-request", aliases: []string{"request-funds"}, short: "Request rapid-response funding", bind: bindFundingRequest},
	{kind: "funding-decision", aliases: []string{"decide-funds"}, short: "Approve (--approve) or reject a funding request; never by its requester (four-eyes)", bind: bindFundingDecision},
	{kind: "follow-up-check-in", aliases: []string{"check-in"}, short: "Record a follow-up check-in", bind: bindCheckIn},
	{kind: "closure", aliases: []string{"close"}, short: "Close the crisis with its outcome and lessons (after every stage has ended)", bind: bindClosure},
}

func newDecideCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decide",
		Short: "Record a decision on a crisis (who, when, why, what)",
		Long: `Record a decision on a crisis. The crisis checks it before anything is written
(the stage must be running, the decision pending, the four-eyes rule kept) and
the error names the rule that failed. "demarche crisis show ID" lists what the
crisis is waiting for and who may decide it. Each verb is the decision's name
in the schema, the HTTP API and the events. You decide as the identity of your
credential ("demarche login"); the decision's role must be one of yours.`,
	}
	for _, v := range decisionVerbs {
		cmd.AddCommand(newDecisionVerbCmd(app, v))
	}
	return cmd
}

func newDecisionVerbCmd(app *App, v decisionVerb) *cobra.Command {
	var rationale, requestID string
	sub := &cobra.Command{Use: v.kind + " CRISIS-ID", Aliases: v.aliases, Short: v.short, Example: v.example, Args: cobra.ExactArgs(1)}
	sub.Flags().StringVar(&rationale, "rationale", "", "why: recorded with the decision (required)")
	sub.Flags().StringVar(&requestID, "request-id", "", "idempotency key: the same key is recorded once (default: generated)")
	build := v.bind(sub.Flags())
	app.registerRosterCompletion(sub) // --envoy, --standby-team, --team complete roster ids
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		req, err := build()
		if err != nil {
			return err
		}
		req.Rationale = rationale
		// Who decides, and with which roles, comes from the credential.
		if err := (&demarchev1.DecisionRequest{Principal: "you", Rationale: rationale, Decision: req.Decision}).Validate(); err != nil {
			return err
		}
		api, err := app.api()
		if err != nil {
			return err
		}
		var rec demarchev1.DecisionRecord
		if err := api.do(cmd.Context(), "POST", "/v1/crises/"+url.PathEscape(args[0])+"/decisions", nil, req, &rec, "Idempotency-Key", requestID); err != nil {
			return err
		}
		fmt.Fprintf(app.Out, "recorded decision %d on %s: %s by %s at %s\n", rec.GetNumber(), args[0], rec.GetKind(), rec.GetPrincipal(), ts(rec.GetDecidedAt()))
		return nil
	}
	return sub
}

// decision wraps one decision message in a request (principal and rationale
// are filled in by the verb).
func decision(d proto.Message) *demarchev1.DecisionRequest {
	return demarchev1.NewDecisionRequest("", "", d)
}

func bindTriage(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.WarningTriage{}
	fs.StringVar(&d.Assessment, "assessment", "", "what the warning shows (required)")
	return func() (*demarchev1.DecisionRequest, error) { return decision(d), nil }
}

func bindGoodOffices(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	var option string
	fs.StringVar(&option, "option", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.GoodOfficesOption(0)), ", ")+" (required)")
	return func() (*demarchev1.DecisionRequest, error) {
		o, err := demarchev1.ParseGoodOfficesOption(option)
		if err != nil {
			return nil, fmt.Errorf("--option: %s", reasonOf(err))
		}
		return decision(&demarchev1.GoodOfficesDecision{Option: o}), nil
	}
}

func bindMandate(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.FactFindingMandate{}
	var body, reportDue string
	fs.StringVar(&d.TermsOfReference, "terms", "", "terms of reference (required)")
	fs.StringVar(&body, "body", "", "mandating body: "+strings.Join(demarchev1.EnumSlugs(demarchev1.MandatingBody(0)), ", ")+" (required)")
	fs.StringSliceVar(&d.Team, "team", nil, "mission members: roster ids (completed from the roster) or names, comma-separated (required)")
	fs.StringVar(&reportDue, "report-due", "", "RFC 3339 time or a duration from now, e.g. 720h (required)")
	return func() (*demarchev1.DecisionRequest, error) {
		b, err := demarchev1.ParseMandatingBody(body)
		if err != nil {
			return nil, fmt.Errorf("--body: %s", reasonOf(err))
		}
		due, err := parseWhen(reportDue)
		if err != nil {
			return nil, fmt.Errorf("--report-due: %w", err)
		}
		d.MandatingBody, d.ReportDue = b, due
		return decision(d), nil
	}
}

func bindReport(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.FactFindingReport{}
	fs.StringVar(&d.Summary, "summary", "", "summary of the findings (required)")
	fs.StringArrayVar(&d.Findings, "finding", nil, "one finding; repeat the flag for more")
	return func() (*demarchev1.DecisionRequest, error) { return decision(d), nil }
}

func bindAppointment(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.EnvoyAppointment{}
	fs.StringVar(&d.Envoy, "envoy", "", "the special envoy: a senior envoy's roster id, completed from the roster (see demarche roster search --kind senior-envoy) (required)")
	fs.StringSliceVar(&d.StandbyTeam, "standby-team", nil, "standby-team experts: roster ids, comma-separated, completed from the roster (see demarche roster search --kind standby-expert) (required)")
	return func() (*demarchev1.DecisionRequest, error) { return decision(d), nil }
}

func bindDeployed(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.StandbyTeamDeployed{}
	fs.StringVar(&d.Location, "location", "", "where the team is (required)")
	return func() (*demarchev1.DecisionRequest, error) { return decision(d), nil }
}

func bindFundingRequest(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.FundingRequest{}
	fs.StringVar(&d.RequestId, "funding-request", "", "request id, e.g. FR-1 (required)")
	fs.StringVar(&d.Fund, "fund", "", "fund, e.g. flexible-financing or peacebuilding-irf (required)")
	fs.Int64Var(&d.AmountUsd, "amount", 0, "amount in US dollars (required)")
	fs.StringVar(&d.Purpose, "purpose", "", "what the money is for (required)")
	return func() (*demarchev1.DecisionRequest, error) { return decision(d), nil }
}

func bindFundingDecision(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.FundingDecision{}
	fs.StringVar(&d.RequestId, "funding-request", "", "request id (required)")
	fs.BoolVar(&d.Approve, "approve", false, "approve the request (without it: reject)")
	return func() (*demarchev1.DecisionRequest, error) { return decision(d), nil }
}

func bindCheckIn(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.FollowUpCheckIn{}
	var recommendation string
	fs.BoolVar(&d.CommitmentsImplemented, "commitments-implemented", false, "the parties' commitments are being implemented")
	fs.StringVar(&d.Tensions, "tensions", "", "tensions observed")
	fs.StringVar(&recommendation, "recommendation", "continue", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.FollowUpRecommendation(0)), ", "))
	return func() (*demarchev1.DecisionRequest, error) {
		rec, err := demarchev1.ParseFollowUpRecommendation(recommendation)
		if err != nil {
			return nil, fmt.Errorf("--recommendation: %s", reasonOf(err))
		}
		d.Recommendation = rec
		return decision(d), nil
	}
}

func bindClosure(fs *pflag.FlagSet) func() (*demarchev1.DecisionRequest, error) {
	d := &demarchev1.ClosureDecision{}
	var outcome string
	fs.StringVar(&outcome, "outcome", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.Outcome(0)), ", ")+" (required)")
	fs.StringArrayVar(&d.Lessons, "lesson", nil, "one lesson; repeat the flag for more (at least one)")
	return func() (*demarchev1.DecisionRequest, error) {
		o, err := demarchev1.ParseOutcome(outcome)
		if err != nil {
			return nil, fmt.Errorf("--outcome: %s", reasonOf(err))
		}
		d.Outcome = o
		return decision(d), nil
	}
}

// parseWhen reads an RFC 3339 time or a duration from now.
func parseWhen(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, fmt.Errorf("is required (RFC 3339 time or a duration such as 720h)")
	}
	if d, err := time.ParseDuration(s); err == nil {
		return timestamppb.New(time.Now().Add(d)), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return timestamppb.New(t), nil
}
