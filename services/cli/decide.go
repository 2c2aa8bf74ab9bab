package cli

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// The decision verbs are read from the schema's decision table
// (demarchev1.DecisionForms): one verb per decision kind, named as the kind,
// with the aliases of earlier releases, and one flag per field of the
// decision's message, named, typed and explained by the field's (input)
// options. A new decision kind gets its verb without an edit here.

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
	for _, f := range demarchev1.DecisionForms() {
		cmd.AddCommand(newDecisionVerbCmd(app, f))
	}
	return cmd
}

func newDecisionVerbCmd(app *App, form *demarchev1.DecisionForm) *cobra.Command {
	var rationale, requestID string
	sub := &cobra.Command{Use: form.Kind + " CRISIS-ID", Aliases: form.Aliases, Short: form.Summary, Example: form.Example, Args: cobra.ExactArgs(1)}
	sub.Flags().StringVar(&rationale, "rationale", "", "why: recorded with the decision (required)")
	sub.Flags().StringVar(&requestID, "request-id", "", "idempotency key: the same key is recorded once (default: generated)")
	build := bindDecision(sub.Flags(), form)
	app.registerRosterCompletion(sub, form) // --envoy, --standby-team, --team complete roster ids
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		req, err := build()
		if err != nil {
			return err
		}
		req.Rationale = rationale
		// Who decides, and with which roles, comes from the credential; an
		// id the gateway makes up when left out is not asked for here.
		check := proto.Clone(req).(*demarchev1.DecisionRequest)
		check.Principal = "you"
		check.FillGenerated(func() string { return "generated-id" })
		if err := check.Validate(); err != nil {
			return asFlags(err, form)
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

// bindDecision adds one flag per input of the form to fs and returns the
// builder of the decision from them (principal and rationale left empty).
// A flag not given takes the input's default.
func bindDecision(fs *pflag.FlagSet, form *demarchev1.DecisionForm) func() (*demarchev1.DecisionRequest, error) {
	values := map[*demarchev1.DecisionInput]func() []string{}
	for _, in := range form.Inputs {
		usage := flagUsage(in)
		switch in.Type {
		case demarchev1.InputList:
			var v []string
			if in.Multiline {
				fs.StringArrayVar(&v, in.Flag, nil, usage) // items may hold commas
			} else {
				fs.StringSliceVar(&v, in.Flag, nil, usage)
			}
			values[in] = func() []string { return v }
		case demarchev1.InputInteger:
			var v int64
			fs.Int64Var(&v, in.Flag, 0, usage)
			values[in] = func() []string { return []string{strconv.FormatInt(v, 10)} }
		case demarchev1.InputYesNo:
			var v bool
			fs.BoolVar(&v, in.Flag, false, usage)
			values[in] = func() []string { return []string{strconv.FormatBool(v)} }
		default: // text, choices, times: read by the form
			var v string
			fs.StringVar(&v, in.Flag, in.Default, usage)
			values[in] = func() []string { return []string{v} }
		}
	}
	return func() (*demarchev1.DecisionRequest, error) {
		req, err := form.Build(time.Now(), func(in *demarchev1.DecisionInput) []string {
			if !fs.Changed(in.Flag) {
				return nil // not given: the input's default, or nothing
			}
			return values[in]()
		})
		var ie *demarchev1.InputError
		if errors.As(err, &ie) {
			return nil, fmt.Errorf("--%s: %s", ie.Input.Flag, ie.Reason)
		}
		return req, err
	}
}

// flagUsage is an input's help as a flag's: its help, the choices, how a
// list is given, and whether it is required.
func flagUsage(in *demarchev1.DecisionInput) string {
	var b strings.Builder
	b.WriteString(in.Help)
	switch in.Type {
	case demarchev1.InputChoice:
		slugs := make([]string, len(in.Choices))
		for i, c := range in.Choices {
			slugs[i] = c.Value
		}
		fmt.Fprintf(&b, "; one of: %s", strings.Join(slugs, ", "))
	case demarchev1.InputList:
		if in.Multiline {
			b.WriteString("; one a flag, repeat the flag for more")
		} else {
			b.WriteString("; comma-separated")
		}
	}
	if in.Source == demarchev1.DecisionInputSource_DECISION_INPUT_SOURCE_ROSTER {
		b.WriteString(" (completed from the roster)")
	}
	if in.Required {
		b.WriteString(" (required)")
	}
	return b.String()
}

// asFlags names the fields of a decision's validation error by their flags
// ("--report-due: is required"), as the person typed them.
func asFlags(err error, form *demarchev1.DecisionForm) error {
	var verr *demarchev1.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	flags := map[string]string{"rationale": "--rationale"}
	for _, in := range form.Inputs {
		flags[in.Path] = "--" + in.Flag
	}
	out := &demarchev1.ValidationError{Message: verr.Message}
	for _, fe := range verr.Fields {
		named := *fe
		if f, ok := flags[fe.Field]; ok {
			named.Field = f
		}
		out.Fields = append(out.Fields, &named)
	}
	return out
}
