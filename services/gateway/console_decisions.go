package gateway

// The console's decision forms, read from the schema's decision table
// (demarchev1.DecisionForms) like the CLI's verbs: one form per decision
// kind, one field per field of the decision's message, labelled, explained
// and checked as its (input) options say. A new decision kind gets its form
// without an edit here or in the templates.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// formView is one decision kind's form on the crisis page.
type formView struct {
	Kind, Label, Summary string
	// Note replaces the form: the decision is taken on a panel of its own.
	Note   string
	Fields []fieldView
	// Rationale and RationaleError: a refused submit's rationale and why.
	Rationale, RationaleError string
	// Error is a refused submit's message ("" : none); FieldErrors: it is
	// shown beside the fields it names, not again above them.
	Error       string
	FieldErrors bool
}

// keep fills a decision form in again with a refused submit's values and
// puts each field's reason beside it.
func (v *formView) keep(k *kept) {
	fieldErrs, msg := plainFieldErrors(v.Kind, k.Error)
	v.Error = msg
	for i := range v.Fields {
		f := &v.Fields[i]
		f.Value = strings.Join(k.Values[f.Name], "\n")
		if f.Widget == "text" && len(k.Values[f.Name]) > 1 {
			f.Value = strings.Join(k.Values[f.Name], ", ")
		}
		f.Error = fieldErrs[f.Name]
	}
	v.Rationale, v.RationaleError = k.Values.Get("rationale"), fieldErrs["rationale"]
	v.FieldErrors = len(fieldErrs) > 0
}

// fieldView is one field of a decision form.
type fieldView struct {
	// ID is the control's element id; Name the form field's (the schema's
	// field name, e.g. amount_usd).
	ID, Name                 string
	Label, Help, Placeholder string
	// Widget is the control: text, textarea, select, checkbox, number, date.
	Widget   string
	Required bool
	Choices  []demarchev1.Choice
	Default  string
	// Value is what the field holds (a refused submit's value, kept);
	// Error why the field was refused, in words ("" : not refused).
	Value, Error string
	// Roster: the field takes roster ids, picked with the roster picker;
	// ExpertKind the roster kind it asks for ("" : any).
	Roster     bool
	ExpertKind string
	// Many: the field takes several values (a list).
	Many bool
}

// decisionForms are the forms of every decision kind; funds are the
// funding service's funds, offered as a list where an input takes a fund
// (none known: typed in).
func decisionForms(funds []string) map[string]formView {
	out := map[string]formView{}
	for _, f := range demarchev1.DecisionForms() {
		out[f.Kind] = decisionFormView(f, funds)
	}
	return out
}

func decisionFormView(f *demarchev1.DecisionForm, funds []string) formView {
	v := formView{Kind: f.Kind, Label: f.Label, Summary: f.Summary, Note: f.ConsoleNote}
	for _, in := range f.Inputs {
		// A choice is never made for the person deciding (no default
		// preselected: an option, an outcome, a recommendation is chosen).
		fv := fieldView{ID: "in-" + f.Kind + "-" + in.Name, Name: in.Name, Label: in.Label, Help: in.Help,
			Placeholder: in.Placeholder, Required: in.Required, Choices: in.Choices,
			Roster: in.Source == demarchev1.DecisionInputSource_DECISION_INPUT_SOURCE_ROSTER, ExpertKind: in.ExpertKind}
		switch in.Type {
		case demarchev1.InputText:
			fv.Widget = "text"
			if in.Multiline {
				fv.Widget = "textarea"
			}
			if in.Source == demarchev1.DecisionInputSource_DECISION_INPUT_SOURCE_FUNDS && len(funds) > 0 {
				fv.Widget, fv.Choices = "select", nil
				for _, id := range funds {
					fv.Choices = append(fv.Choices, demarchev1.Choice{Value: id, Words: words(id)})
				}
				if len(funds) == 1 {
					fv.Default = funds[0] // no choice to make
				}
			}
		case demarchev1.InputList:
			fv.Many = true
			fv.Widget, fv.Help = "text", joinHelp(in.Help, "comma-separated")
			if in.Multiline {
				fv.Widget, fv.Help = "textarea", joinHelp(in.Help, "one a line")
			}
		case demarchev1.InputChoice:
			fv.Widget = "select"
		case demarchev1.InputInteger:
			fv.Widget = "number"
		case demarchev1.InputYesNo:
			fv.Widget = "checkbox"
		case demarchev1.InputTime:
			fv.Widget = "date"
			fv.Help = "the date it is due (17:00 UTC that day)"
		default:
			continue // the schema's test refuses such a field
		}
		v.Fields = append(v.Fields, fv)
	}
	return v
}

func joinHelp(help, how string) string {
	if help == "" {
		return how
	}
	return help + "; " + how
}

// decisionFromForm builds the DecisionRequest of a decision form. The
// principal and roles are left empty: the API stamps them from the token.
func decisionFromForm(kind string, r *http.Request) (*demarchev1.DecisionRequest, error) {
	form := demarchev1.DecisionFormOf(kind)
	if form == nil {
		return nil, fmt.Errorf("unknown decision %q", kind)
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("the form could not be read: %w", err)
	}
	req, err := form.Build(time.Now(), func(in *demarchev1.DecisionInput) []string {
		var given []string
		for _, v := range r.PostForm[in.Name] {
			if v = strings.TrimSpace(v); v != "" {
				given = append(given, v)
			}
		}
		return given
	})
	var ie *demarchev1.InputError
	if errors.As(err, &ie) {
		return nil, ie // its path is put in the field's label on the page (plainFieldErrors)
	}
	if err != nil {
		return nil, err
	}
	req.Rationale = strings.TrimSpace(r.PostFormValue("rationale"))
	return req, nil
}
