package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// decisionFlags are shared by every `crisis decide` verb.
type decisionFlags struct {
	principal, rationale, requestID string
}

func (d *decisionFlags) bind(cmd *cobra.Command) {
	def := defaultPrincipal()
	cmd.Flags().StringVar(&d.principal, "as", def, "who decides (env DEMARCHE_PRINCIPAL, default $USER)")
	cmd.Flags().StringVar(&d.rationale, "rationale", "", "why: recorded with the decision (required)")
	cmd.Flags().StringVar(&d.requestID, "request-id", "", "idempotency key: the same key is recorded once (default: generated)")
}

// verb is one decision: its flags fill the decision, and build checks them.
type verb struct {
	use, short, long, example string
	bind                      func(*cobra.Command)
	build                     func() (isDecision, error)
}

type isDecision = func(*demarchev1.DecisionRequest)

func newDecideCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decide",
		Short: "Record a decision on a crisis (who, when, why, what)",
		Long: `Record a decision on a crisis. The crisis checks it before anything is written
(the stage must be running, the decision pending, the four-eyes rule kept) and
the error names the rule that failed. "demarche crisis show ID" lists what the
crisis is waiting for and who may decide it.`,
	}
	var (
		assessment, terms, body, reportDue, summary, envoy, location, fund, purpose, fundReq, tensions, recommendation, outcome, option string
		team, findings, standby, lessons                                                                                                []string
		amount                                                                                                                          int64
		approve, implemented                                                                                                            bool
	)
	verbs := []verb{
		{use: "triage", short: "Confirm the warning calls for a response (ends the warning stage)",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&assessment, "assessment", "", "what the warning shows (required)")
			},
			build: func() (isDecision, error) {
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: assessment}}
				}, nil
			}},
		{use: "good-offices", short: "Choose the good-offices option (ends good offices)",
			example: "  demarche crisis decide good-offices GN-20261127-K7Q3P --option demarche --rationale \"junta open to talks\"",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&option, "option", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.GoodOfficesOption(0)), ", ")+" (required)")
			},
			build: func() (isDecision, error) {
				o, err := demarchev1.ParseGoodOfficesOption(option)
				if err != nil {
					return nil, fmt.Errorf("--option: %s", reasonOf(err))
				}
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: o}}
				}, nil
			}},
		{use: "mandate", short: "Mandate the fact-finding mission (terms, mandating body, team, report deadline)",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&terms, "terms", "", "terms of reference (required)")
				c.Flags().StringVar(&body, "body", "", "mandating body: "+strings.Join(demarchev1.EnumSlugs(demarchev1.MandatingBody(0)), ", ")+" (required)")
				c.Flags().StringSliceVar(&team, "team", nil, "mission members, comma-separated (required)")
				c.Flags().StringVar(&reportDue, "report-due", "", "RFC 3339 time or a duration from now, e.g. 720h (required)")
			},
			build: func() (isDecision, error) {
				b, err := demarchev1.ParseMandatingBody(body)
				if err != nil {
					return nil, fmt.Errorf("--body: %s", reasonOf(err))
				}
				due, err := parseWhen(reportDue)
				if err != nil {
					return nil, fmt.Errorf("--report-due: %w", err)
				}
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_FactFindingMandate{FactFindingMandate: &demarchev1.FactFindingMandate{
						TermsOfReference: terms, MandatingBody: b, Team: team, ReportDue: due}}
				}, nil
			}},
		{use: "report", short: "Record the fact-finding report (ends fact-finding)",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&summary, "summary", "", "summary of the findings (required)")
				c.Flags().StringArrayVar(&findings, "finding", nil, "one finding; repeat the flag for more")
			},
			build: func() (isDecision, error) {
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_FactFindingReport{FactFindingReport: &demarchev1.FactFindingReport{Summary: summary, Findings: findings}}
				}, nil
			}},
		{use: "appoint-envoy", short: "Appoint the special envoy and the standby team (starts nothing new: the 72h clock runs from the stage's start)",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&envoy, "envoy", "", "the special envoy (required)")
				c.Flags().StringSliceVar(&standby, "standby-team", nil, "standby-team experts, comma-separated (required)")
			},
			build: func() (isDecision, error) {
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_EnvoyAppointment{EnvoyAppointment: &demarchev1.EnvoyAppointment{Envoy: envoy, StandbyTeam: standby}}
				}, nil
			}},
		{use: "deployed", short: "Confirm the standby team is deployed (ends envoy deployment)",
			bind: func(c *cobra.Command) { c.Flags().StringVar(&location, "location", "", "where the team is (required)") },
			build: func() (isDecision, error) {
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_StandbyTeamDeployed{StandbyTeamDeployed: &demarchev1.StandbyTeamDeployed{Location: location}}
				}, nil
			}},
		{use: "request-funds", short: "Request rapid-response funding",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&fundReq, "funding-request", "", "request id, e.g. FR-1 (required)")
				c.Flags().StringVar(&fund, "fund", "", "fund, e.g. flexible-financing or peacebuilding-irf (required)")
				c.Flags().Int64Var(&amount, "amount", 0, "amount in US dollars (required)")
				c.Flags().StringVar(&purpose, "purpose", "", "what the money is for (required)")
			},
			build: func() (isDecision, error) {
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_FundingRequest{FundingRequest: &demarchev1.FundingRequest{RequestId: fundReq, Fund: fund, AmountUsd: amount, Purpose: purpose}}
				}, nil
			}},
		{use: "decide-funds", short: "Approve (--approve) or reject a funding request; never by its requester (four-eyes)",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&fundReq, "funding-request", "", "request id (required)")
				c.Flags().BoolVar(&approve, "approve", false, "approve the request (without it: reject)")
			},
			build: func() (isDecision, error) {
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_FundingDecision{FundingDecision: &demarchev1.FundingDecision{RequestId: fundReq, Approve: approve}}
				}, nil
			}},
		{use: "check-in", short: "Record a follow-up check-in",
			bind: func(c *cobra.Command) {
				c.Flags().BoolVar(&implemented, "commitments-implemented", false, "the parties' commitments are being implemented")
				c.Flags().StringVar(&tensions, "tensions", "", "tensions observed")
				c.Flags().StringVar(&recommendation, "recommendation", "continue", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.FollowUpRecommendation(0)), ", "))
			},
			build: func() (isDecision, error) {
				rec, err := demarchev1.ParseFollowUpRecommendation(recommendation)
				if err != nil {
					return nil, fmt.Errorf("--recommendation: %s", reasonOf(err))
				}
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_FollowUpCheckIn{FollowUpCheckIn: &demarchev1.FollowUpCheckIn{CommitmentsImplemented: implemented, Tensions: tensions, Recommendation: rec}}
				}, nil
			}},
		{use: "close", short: "Close the crisis with its outcome and lessons (after every stage has ended)",
			bind: func(c *cobra.Command) {
				c.Flags().StringVar(&outcome, "outcome", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.Outcome(0)), ", ")+" (required)")
				c.Flags().StringArrayVar(&lessons, "lesson", nil, "one lesson; repeat the flag for more (at least one)")
			},
			build: func() (isDecision, error) {
				o, err := demarchev1.ParseOutcome(outcome)
				if err != nil {
					return nil, fmt.Errorf("--outcome: %s", reasonOf(err))
				}
				return func(r *demarchev1.DecisionRequest) {
					r.Decision = &demarchev1.DecisionRequest_Closure{Closure: &demarchev1.ClosureDecision{Outcome: o, Lessons: lessons}}
				}, nil
			}},
	}
	for _, v := range verbs {
		v := v
		var df decisionFlags
		sub := &cobra.Command{
			Use: v.use + " CRISIS-ID", Short: v.short, Example: v.example, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				fill, err := v.build()
				if err != nil {
					return err
				}
				req := &demarchev1.DecisionRequest{Principal: df.principal, Rationale: df.rationale}
				fill(req)
				if err := req.Validate(); err != nil {
					return err
				}
				tc, err := app.temporal(cmd.Context())
				if err != nil {
					return err
				}
				defer tc.Close()
				rec, err := crisis.Decide(cmd.Context(), tc, args[0], df.requestID, req)
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Out, "recorded decision %d on %s: %s by %s at %s\n", rec.GetNumber(), args[0], rec.GetKind(), rec.GetPrincipal(), ts(rec.GetDecidedAt()))
				return nil
			},
		}
		df.bind(sub)
		v.bind(sub)
		cmd.AddCommand(sub)
	}
	return cmd
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
