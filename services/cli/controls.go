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

// newControlCmds are the operator controls: escalate, de-escalate, skip,
// reopen, warn, partner-role. They are signals: the CLI checks what it can
// first (input rules, and the crisis's state for skip and reopen) so a mistake
// gets an error instead of being ignored by the workflow.
func newControlCmds(app *App) []*cobra.Command {
	principal := func(c *cobra.Command, p *string) {
		def := defaultPrincipal()
		c.Flags().StringVar(p, "as", def, "who acts (env DEMARCHE_PRINCIPAL, default $USER)")
	}
	send := func(cmd *cobra.Command, id, name string, arg any, done string) error {
		tc, err := app.temporal(cmd.Context())
		if err != nil {
			return err
		}
		defer tc.Close()
		if err := crisis.Signal(cmd.Context(), tc, id, name, arg); err != nil {
			return err
		}
		fmt.Fprintln(app.Out, done)
		return nil
	}
	var cmds []*cobra.Command
	for _, sev := range []struct {
		use, signal, short string
		delta              int32
	}{
		{"escalate", crisis.SignalEscalate, "Raise the crisis's severity by one level", +1},
		{"de-escalate", crisis.SignalDeEscalate, "Lower the crisis's severity by one level", -1},
	} {
		sev := sev
		var ctl demarchev1.SeverityControl
		c := &cobra.Command{Use: sev.use + " CRISIS-ID", Short: sev.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := ctl.Validate(); err != nil {
					return err
				}
				st, err := app.state(cmd, args[0])
				if err != nil {
					return err
				}
				if s := st.GetCrisis().GetSeverity() + sev.delta; s < 1 || s > 5 {
					return fmt.Errorf("severity is %d already (allowed: 1 to 5)", st.GetCrisis().GetSeverity())
				}
				return send(cmd, args[0], sev.signal, &ctl, fmt.Sprintf("%s: severity %d -> %d requested", args[0], st.GetCrisis().GetSeverity(), st.GetCrisis().GetSeverity()+sev.delta))
			}}
		principal(c, &ctl.Principal)
		c.Flags().StringVar(&ctl.Reason, "reason", "", "why (required)")
		cmds = append(cmds, c)
	}
	for _, sc := range []struct {
		use, signal, short string
	}{
		{"skip", crisis.SignalSkipStage, "Skip a running or upcoming stage, with a reason"},
		{"reopen", crisis.SignalReopenStage, "Run a completed or skipped stage again, with a reason"},
	} {
		sc := sc
		var ctl demarchev1.StageControl
		var stage string
		c := &cobra.Command{Use: sc.use + " CRISIS-ID", Short: sc.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := demarchev1.ParseStage(stage)
				if err != nil {
					return fmt.Errorf("--stage: %s", reasonOf(err))
				}
				ctl.Stage = s
				if err := ctl.Validate(); err != nil {
					return err
				}
				st, err := app.state(cmd, args[0])
				if err != nil {
					return err
				}
				if err := checkStageControl(sc.use, s, st); err != nil {
					return err
				}
				return send(cmd, args[0], sc.signal, &ctl, fmt.Sprintf("%s: %s %s requested", args[0], sc.use, s.Slug()))
			}}
		principal(c, &ctl.Principal)
		c.Flags().StringVar(&ctl.Reason, "reason", "", "why (required)")
		c.Flags().StringVar(&stage, "stage", "", "the stage: "+strings.Join(demarchev1.StageSlugs()[:6], ", ")+" (required)")
		cmds = append(cmds, c)
	}
	var w demarchev1.Warning
	warn := &cobra.Command{Use: "warn CRISIS-ID", Short: "Attach a new early-warning signal (during follow-up a severe one is a relapse)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w.ObservedAt = timestamppb.New(time.Now())
			return send(cmd, args[0], crisis.SignalWarning, &w, fmt.Sprintf("%s: warning attached", args[0]))
		}}
	warn.Flags().StringVar(&w.Source, "source", "", "where the signal comes from, e.g. acled, ecowarn, un-human-rights (required)")
	warn.Flags().StringVar(&w.SourceId, "source-id", "", "the source's own id of the signal")
	warn.Flags().StringVar(&w.Summary, "summary", "", "what happened (required)")
	warn.Flags().Int32Var(&w.Severity, "severity", 0, "1 to 5 (required)")
	cmds = append(cmds, warn)

	var ack demarchev1.PartnerRoleAck
	var role string
	partner := &cobra.Command{Use: "partner-role CRISIS-ID", Short: "Record a partner organisation's role (lead, support, burden-sharing, joint)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := demarchev1.ParsePartnerRoleKind(role)
			if err != nil {
				return fmt.Errorf("--role: %s", reasonOf(err))
			}
			ack.Role = r
			ack.AcknowledgedAt = timestamppb.New(time.Now())
			return send(cmd, args[0], crisis.SignalPartnerRole, &ack, fmt.Sprintf("%s: %s acknowledged as %s", args[0], ack.GetPartner(), r.Slug()))
		}}
	principal(partner, &ack.Principal)
	partner.Flags().StringVar(&ack.Partner, "partner", "", "organisation, e.g. AU, ECOWAS, EU, OSCE, OAS (required)")
	partner.Flags().StringVar(&role, "role", "", "one of: "+strings.Join(demarchev1.EnumSlugs(demarchev1.PartnerRoleKind(0)), ", ")+" (required)")
	cmds = append(cmds, partner)
	return cmds
}

// checkStageControl says why a skip or reopen would be ignored.
func checkStageControl(verb string, s demarchev1.Stage, st *demarchev1.CrisisState) error {
	if st.GetClosedAt() != nil {
		return fmt.Errorf("crisis %s is closed", st.GetCrisis().GetId())
	}
	running, reached := false, false
	for _, a := range st.GetActiveStages() {
		running = running || a == s
	}
	for _, r := range st.GetTimeline() {
		reached = reached || r.GetStage() == s
	}
	switch verb {
	case "skip":
		if reached && !running {
			return fmt.Errorf("stage %s has already ended; nothing to skip", s.Slug())
		}
	case "reopen":
		if running {
			return fmt.Errorf("stage %s is running; nothing to reopen", s.Slug())
		}
		if !reached {
			return fmt.Errorf("stage %s has not run yet in this crisis (playbook %s)", s.Slug(), st.GetPlaybook())
		}
	}
	return nil
}

// state queries a crisis's state for a command.
func (a *App) state(cmd *cobra.Command, id string) (*demarchev1.CrisisState, error) {
	tc, err := a.temporal(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	return crisis.State(cmd.Context(), tc, id)
}
