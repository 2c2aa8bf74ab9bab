package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// newWarningDialogueCmd is "demarche warning dialogue": an early-warning
// dialogue held with a regional organisation about a situation
// (¶66 "early warning dialogues"), recorded by an
// analyst or a head of department (the gateway checks the role and records
// who from the credential).
func newWarningDialogueCmd(app *App) *cobra.Command {
	d := &demarchev1.WarningDialogue{}
	var crisisType, date string
	var output outputFlag
	c := &cobra.Command{Use: "dialogue", Short: "Record an early-warning dialogue with a regional organisation about a situation (analysts, heads of department)",
		Long: `Record an early-warning dialogue held with a regional organisation of the partner
registry (demarche partner list) about a situation (country + crisis type): the
day it was held, what was discussed and the outcome (the assessment shared).
A situation has any number; warning score lists them, and so does the console's
situation page. Each is recorded on the global audit chain with who recorded it.
The same dialogue (situation, organisation, day, summary) sent again changes
nothing. Only analysts and heads of department may.`,
		Example: `  demarche warning dialogue --country GN --type unconstitutional-change --organisation ECOWAS \
      --date 2026-12-07 --summary "ECOWAS early-warning directorate: troop movements around Conakry" \
      --outcome "shared assessment: risk of a coup within weeks; joint démarche proposed"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ct, err := demarchev1.ParseCrisisType(crisisType)
			if crisisType == "" {
				err = fmt.Errorf("is required (allowed: %s)", strings.Join(demarchev1.CrisisTypeSlugs(), ", "))
			}
			if err != nil {
				return fmt.Errorf("--type: %s", reasonOf(err))
			}
			d.CrisisType = ct
			d.CountryCode = strings.ToUpper(d.GetCountryCode())
			day := time.Now().UTC()
			if date != "" {
				if day, err = time.Parse(time.DateOnly, date); err != nil {
					return fmt.Errorf("--date: %q is not a day (allowed: YYYY-MM-DD, e.g. %s)", date, time.Now().UTC().Format(time.DateOnly))
				}
			}
			d.Date = timestamppb.New(day)
			var res demarchev1.RecordDialogueResponse
			if err := app.call(cmd.Context(), natsrpc.EarlyWarningDialogue, &demarchev1.RecordDialogueRequest{Dialogue: d}, &res); err != nil {
				return err
			}
			if asJSON, err := output.json(); err != nil || asJSON {
				if err != nil {
					return err
				}
				return app.printJSON(&res)
			}
			again := ""
			if res.GetReplayed() {
				again = " (already recorded: nothing changed)"
			}
			r := res.GetDialogue()
			fmt.Fprintf(app.Out, "recorded the early-warning dialogue %s with %s on %s %s held %s%s; audit record %s (by %s)\n",
				r.GetId(), r.GetOrganisation(), r.GetCountryCode(), r.GetCrisisType().Slug(), r.GetDate().AsTime().UTC().Format(time.DateOnly), again,
				res.GetRecord().GetEventId(), res.GetRecord().GetPrincipal())
			return nil
		}}
	fl := c.Flags()
	fl.StringVar(&d.CountryCode, "country", "", "ISO 3166-1 alpha-2 country code of the situation (required)")
	fl.StringVar(&crisisType, "type", "", "crisis type of the situation: "+strings.Join(demarchev1.CrisisTypeSlugs(), ", ")+" (required)")
	fl.StringVar(&d.Organisation, "organisation", "", "the regional organisation of the partner registry (e.g. ECOWAS, AU; see demarche partner list) (required)")
	fl.StringVar(&date, "date", "", "the day the dialogue was held, YYYY-MM-DD (default: today)")
	fl.StringVar(&d.Summary, "summary", "", "what was discussed (required)")
	fl.StringVar(&d.Outcome, "outcome", "", "the outcome: the assessment shared, or where the two differ (required)")
	output.bind(c)
	return c
}

// printDialogues lists a situation's early-warning dialogues (warning score).
func printDialogues(out io.Writer, ds []*demarchev1.WarningDialogue) {
	if len(ds) == 0 {
		fmt.Fprintln(out, "early-warning dialogues with regional organisations: none recorded")
		return
	}
	fmt.Fprintf(out, "early-warning dialogues with regional organisations: %d\n", len(ds))
	for _, d := range ds {
		fmt.Fprintf(out, "  %s with %s (recorded by %s): %s; outcome: %s\n", d.GetDate().AsTime().UTC().Format(time.DateOnly), d.GetOrganisation(),
			d.GetRecordedBy(), oneLine(d.GetSummary()), oneLine(d.GetOutcome()))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
