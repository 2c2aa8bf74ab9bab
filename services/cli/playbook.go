package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/playbook"
)

func newPlaybookCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "playbook",
		Short: "List, show and validate playbooks",
		Long: `A playbook says, for a crisis type, which stages run, in which order, which side
by side, and with which deadlines. The built-in playbooks live in
workflows/playbook/files/; a crisis records the name and version it used.`,
	}
	var listOut, showOut outputFlag
	list := &cobra.Command{Use: "list", Short: "List the built-in playbooks", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			all, err := playbook.Builtin()
			if err != nil {
				return err
			}
			if asJSON, err := listOut.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				v, err := protoList("playbooks", all)
				if err != nil {
					return err
				}
				return app.printJSON(v)
			}
			tw := tabwriter.NewWriter(app.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tCRISIS TYPE\tPHASES")
			for _, p := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.GetName(), p.GetVersion(), p.GetCrisisType().Slug(), phases(p))
			}
			return tw.Flush()
		}}
	show := &cobra.Command{Use: "show NAME", Short: "Show one playbook", Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := playbook.Get(args[0])
			if err != nil {
				return err
			}
			return app.render(showOut, p, func() error { printPlaybook(app, p); return nil })
		}}
	listOut.bind(list)
	showOut.bind(show)
	cmd.AddCommand(list, show,
		&cobra.Command{Use: "validate FILE", Short: "Check a playbook file; every problem is reported with its field", Args: cobra.ExactArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				p, err := playbook.LoadFile(args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Out, "%s: valid playbook %s version %s (%s)\n", args[0], p.GetName(), p.GetVersion(), phases(p))
				return nil
			}},
	)
	return cmd
}

func phases(p *demarchev1.Playbook) string {
	var out []string
	for _, ph := range p.GetPhases() {
		var names []string
		for _, s := range ph.GetStages() {
			names = append(names, s.GetStage().Slug())
		}
		out = append(out, strings.Join(names, " + "))
	}
	return strings.Join(out, " -> ")
}

func printPlaybook(app *App, p *demarchev1.Playbook) {
	w := app.Out
	fmt.Fprintf(w, "playbook  %s (version %s)\ntype      %s\n%s\n\n", p.GetName(), p.GetVersion(), p.GetCrisisType().Slug(), p.GetDescription())
	for i, ph := range p.GetPhases() {
		fmt.Fprintf(w, "phase %d:\n", i+1)
		for _, s := range ph.GetStages() {
			if d := s.GetDeadline(); d != nil {
				fmt.Fprintf(w, "  %-24s decision due %s (at risk after %s)\n", s.GetStage().Slug(), d.GetDue().AsDuration(), d.GetAtRisk().AsDuration())
			} else {
				fmt.Fprintf(w, "  %s\n", s.GetStage().Slug())
			}
		}
	}
	if d := p.GetStandbyTeam(); d != nil {
		fmt.Fprintf(w, "standby team deploys within %s (at risk after %s)\n", d.GetDue().AsDuration(), d.GetAtRisk().AsDuration())
	}
	if f := p.GetFollowUp(); f != nil {
		fmt.Fprintf(w, "follow-up: %d check-ins every %s (continue-as-new every %d); a warning of severity %d or more is a relapse\n",
			f.GetCheckIns(), f.GetInterval().AsDuration(), f.GetCheckInsPerRun(), f.GetRelapseSeverity())
	}
}
