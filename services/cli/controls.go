package cli

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// controlFlags are shared by every operator control.
type controlFlags struct {
	requestID string
}

func (f *controlFlags) bind(c *cobra.Command) {
	c.Flags().StringVar(&f.requestID, "request-id", "", "idempotency key: the same key is applied once (default: generated)")
}

// newControlCmds are the operator controls, each named as its crisis update
// and HTTP route: escalate, de-escalate, skip-stage, reopen-stage, warn,
// partner-role, share, comment. The crisis checks each and a refusal names the rule that
// failed (the CLI keeps no copy of the rules).
func newControlCmds(app *App) []*cobra.Command {
	return []*cobra.Command{
		newSeverityCmd(app, "escalate", crisis.UpdateEscalate, "Raise the crisis's severity by one level (at most 5)"),
		newSeverityCmd(app, "de-escalate", crisis.UpdateDeEscalate, "Lower the crisis's severity by one level (at least 1)"),
		newStageControlCmd(app, "skip-stage", "skip", crisis.UpdateSkipStage, "Skip a running or upcoming stage, with a reason"),
		newStageControlCmd(app, "reopen-stage", "reopen", crisis.UpdateReopenStage, "Run a completed or skipped stage again, with a reason"),
		newWarnCmd(app),
		newPartnerRoleCmd(app),
		newShareCmd(app),
		newCommentCmd(app),
	}
}

// newCommentCmd is "crisis comment": a note on the crisis's timeline (the
// comment control, POST /v1/crises/{id}/controls/comment).
func newCommentCmd(app *App) *cobra.Command {
	var f controlFlags
	var ctl demarchev1.CommentControl
	c := &cobra.Command{Use: "comment CRISIS-ID", Short: "Leave a comment on the crisis's timeline (for the hand-over; never shown to partners)",
		Long: `Leave a comment on a crisis's timeline: what was tried, who was called, what to
watch. It is recorded with your name in the crisis's history and its audit chain
(a CommentAdded event), and appears in the timeline and the report ("crisis
report"), never in a partner's view. Operators and analysts may comment;
partners and auditors may not; a closed crisis takes no more comments.`,
		Example: `  demarche crisis comment GN-20261127-K7Q3P --text "Called the ECOWAS desk: they await our envoy's name"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := app.sendControl(cmd, args[0], f, crisis.UpdateComment, &ctl, func(st *demarchev1.CrisisState) string {
				return fmt.Sprintf("%s: comment recorded (%d in all)", args[0], len(st.GetComments()))
			})
			return namedByFlags(err, map[string]string{"text": "--text"})
		}}
	f.bind(c)
	c.Flags().StringVar(&ctl.Text, "text", "", "the comment (required)")
	return c
}

// newReportCmd is "crisis report": the crisis's timeline with its figures and
// lessons (GET /v1/crises/{id}/report), as JSON, CSV or HTML for print.
func newReportCmd(app *App) *cobra.Command {
	var format, out string
	c := &cobra.Command{Use: "report CRISIS-ID", Short: "A crisis's report: its timeline with figures and lessons, as JSON, CSV or HTML for print",
		Long: `Write a crisis's report for the hand-over: one timeline (signals, decisions and
refusals, controls, sharing changes, stages, deadline events, money, comments)
with the crisis, its figures and its lessons. --format json (the default), csv
(the timeline, then figures and lessons as rows) or html (print it, or save it
as PDF, from a browser). Read as the crisis is: a partner liaison's report is
the partner's view.`,
		Example: `  demarche crisis report GN-20261127-K7Q3P --format html --out report.html
  demarche crisis report GN-20261127-K7Q3P --format csv > timeline.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, err := app.api()
			if err != nil {
				return err
			}
			var b []byte
			if err := api.do(cmd.Context(), "GET", "/v1/crises/"+url.PathEscape(args[0])+"/report", url.Values{"format": {format}}, nil, &b); err != nil {
				return namedByFlags(err, map[string]string{"format": "--format"})
			}
			if out == "" {
				_, err := app.Out.Write(b)
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(app.Out, "wrote %s (%d bytes)\n", out, len(b))
			return nil
		}}
	c.Flags().StringVar(&format, "format", "json", "json, csv or html")
	c.Flags().StringVar(&out, "out", "", "write the report to this file (default: standard output)")
	return c
}

// newShareCmd is "crisis share": who a crisis is shared with, changed during
// the crisis (POST /v1/crises/{id}/sharing).
func newShareCmd(app *App) *cobra.Command {
	var f controlFlags
	var ctl demarchev1.SharingControl
	c := &cobra.Command{Use: "share CRISIS-ID", Short: "Share a crisis with partner organisations (--with), or stop sharing it (--unshare)",
		Long: `Change which partner organisations a crisis is shared with, during the crisis.
A partner newly shared with sees the crisis (API, console, its NATS subjects and
webhook) from now on; a partner no longer shared with stops seeing it (its reads
answer 404) and receives nothing more of it. Each organisation must be in the
partners registry ("demarche partner list"); the change is recorded in the
crisis's audit chain with who made it and why.`,
		Example: `  demarche crisis share GN-20261127-K7Q3P --with ECOWAS,AU --reason "joint mediation"
  demarche crisis share GN-20261127-K7Q3P --unshare AU --reason "the AU stepped back"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for i, p := range ctl.Share {
				ctl.Share[i] = strings.ToUpper(strings.TrimSpace(p))
			}
			for i, p := range ctl.Unshare {
				ctl.Unshare[i] = strings.ToUpper(strings.TrimSpace(p))
			}
			err := app.sendControl(cmd, args[0], f, crisis.UpdateShare, &ctl, func(st *demarchev1.CrisisState) string {
				return fmt.Sprintf("%s: shared with %s", args[0], listOrNone(st.GetCrisis().GetSharedWith()))
			})
			return namedByFlags(err, map[string]string{"share": "--with", "unshare": "--unshare", "reason": "--reason"})
		}}
	f.bind(c)
	c.Flags().StringSliceVar(&ctl.Share, "with", nil, "partner organisations to share with, comma-separated, e.g. ECOWAS,AU")
	c.Flags().StringSliceVar(&ctl.Unshare, "unshare", nil, "partner organisations to stop sharing with, comma-separated")
	c.Flags().StringVar(&ctl.Reason, "reason", "", "why (required)")
	_ = c.RegisterFlagCompletionFunc("with", app.completePartners)    // the flag is defined above: registering fails only for an unknown flag
	_ = c.RegisterFlagCompletionFunc("unshare", app.completePartners) // the flag is defined above: registering fails only for an unknown flag
	return c
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no partner organisation"
	}
	return strings.Join(s, ", ")
}

// sendControl applies one control through the gateway (as the credential's
// identity) and prints what it changed.
func (a *App) sendControl(cmd *cobra.Command, id string, f controlFlags, name string, arg proto.Message, done func(*demarchev1.CrisisState) string) error {
	api, err := a.api()
	if err != nil {
		return err
	}
	var st demarchev1.CrisisState
	path := "/v1/crises/" + url.PathEscape(id) + "/controls/" + strings.TrimPrefix(name, "crisis.")
	if name == crisis.UpdateShare {
		path = "/v1/crises/" + url.PathEscape(id) + "/sharing"
	}
	if err := api.do(cmd.Context(), "POST", path, nil, arg, &st, "Idempotency-Key", f.requestID); err != nil {
		return err
	}
	fmt.Fprintln(a.Out, done(&st))
	return nil
}

func newSeverityCmd(app *App, use, update, short string) *cobra.Command {
	var f controlFlags
	var ctl demarchev1.SeverityControl
	c := &cobra.Command{Use: use + " CRISIS-ID", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.sendControl(cmd, args[0], f, update, &ctl, func(st *demarchev1.CrisisState) string {
				return fmt.Sprintf("%s: severity now %d", args[0], st.GetCrisis().GetSeverity())
			})
		}}
	f.bind(c)
	c.Flags().StringVar(&ctl.Reason, "reason", "", "why (required)")
	return c
}

func newStageControlCmd(app *App, use, alias, update, short string) *cobra.Command {
	var f controlFlags
	var ctl demarchev1.StageControl
	var stage string
	c := &cobra.Command{Use: use + " CRISIS-ID", Aliases: []string{alias}, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := demarchev1.ParseStage(stage)
			if err != nil {
				return fmt.Errorf("--stage: %s", reasonOf(err))
			}
			ctl.Stage = s
			return app.sendControl(cmd, args[0], f, update, &ctl, func(st *demarchev1.CrisisState) string {
				return fmt.Sprintf("%s: %s %s done; running now: %s", args[0], alias, s.Slug(), stageList(st.GetActiveStages()))
			})
		}}
	f.bind(c)
	c.Flags().StringVar(&ctl.Reason, "reason", "", "why (required)")
	c.Flags().StringVar(&stage, "stage", "", "the stage: "+strings.Join(demarchev1.StageSlugs()[:6], ", ")+" (required)")
	return c
}

func newWarnCmd(app *App) *cobra.Command {
	var f controlFlags
	var w demarchev1.Warning
	c := &cobra.Command{Use: "warn CRISIS-ID", Short: "Attach a new early-warning signal (during follow-up a severe one is a relapse)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w.ObservedAt = timestamppb.New(time.Now())
			return app.sendControl(cmd, args[0], f, crisis.UpdateWarn, &demarchev1.WarnControl{Warning: &w}, func(st *demarchev1.CrisisState) string {
				return fmt.Sprintf("%s: warning attached (%d in all)", args[0], len(st.GetWarnings()))
			})
		}}
	f.bind(c)
	c.Flags().StringVar(&w.Source, "source", "", "leave it out: a warning is yours, recorded as your credential's source (person_<subject>); the gateway refuses another")
	c.Flags().StringVar(&w.SourceId, "source-id", "", "the source's own id of the signal")
	c.Flags().StringVar(&w.Summary, "summary", "", "what happened (required)")
	c.Flags().Int32Var(&w.Severity, "severity", 0, "1 to 5 (required)")
	return c
}

func newPartnerRoleCmd(app *App) *cobra.Command {
	var f controlFlags
	var ack demarchev1.PartnerRoleAck
	var role string
	c := &cobra.Command{Use: "partner-role CRISIS-ID", Short: "Record a partner organisation's role (lead, support, burden-sharing, joint, sequential)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := demarchev1.ParsePartnerRoleKind(role)
			if err != nil {
				return fmt.Errorf("--role: %s", reasonOf(err))
			}
			ack.Role = r
			ack.AcknowledgedAt = timestamppb.New(time.Now())
			return app.sendControl(cmd, args[0], f, crisis.UpdatePartnerRole, &ack, func(*demarchev1.CrisisState) string {
				return fmt.Sprintf("%s: %s recorded as %s", args[0], ack.GetPartner(), r.Slug())
			})
		}}
	f.bind(c)
	c.Flags().StringVar(&ack.Partner, "partner", "", "organisation, e.g. AU, ECOWAS, EU, OSCE, OAS (required)")
	c.Flags().StringVar(&role, "role", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.PartnerRoleKind(0)), ", ")+" (required)")
	return c
}

func stageList(stages []demarchev1.Stage) string {
	if len(stages) == 0 {
		return "none"
	}
	out := make([]string, len(stages))
	for i, s := range stages {
		out[i] = s.Slug()
	}
	return strings.Join(out, ", ")
}
