package demarchev1

// The decision table as people see it. Every surface that takes a decision
// (the CLI's verbs and flags, the console's forms, the gateway's defaults and
// the input rules in DecisionRequest.Validate) reads it from here, and it is
// read from the schema: the fields of DecisionRequest's decision oneof are the
// kinds, their (kind) options name them in words, and the fields of each
// decision message, with their (input) options, are what is asked for. A new
// decision kind is its message, its oneof field and its stage file
// (workflows/crisis); no surface lists the kinds by hand.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DecisionForm is one decision kind as people take it.
type DecisionForm struct {
	// Kind is the decision's one name ("good-offices"): the oneof field's
	// name in kebab case, the CLI verb, the console form's kind.
	Kind string
	// Label names the kind in plain words ("good-offices option").
	Label string
	// Summary says what taking the decision does, in a line.
	Summary string
	// Aliases are the CLI verbs of earlier releases, still accepted.
	Aliases []string
	// Example is a command line for the CLI's help ("" : none).
	Example string
	// ConsoleNote, when set, is shown by the console instead of a form where
	// the decision is pending: it is taken on a panel of its own.
	ConsoleNote string
	// Inputs are the fields of the decision message, in schema order.
	Inputs []*DecisionInput

	field protoreflect.FieldDescriptor // the oneof field
}

// InputType is how a field is typed in.
type InputType int

// The input types a decision message's fields may have; TestDecisionForms
// refuses any other field type.
const (
	InputUnsupported InputType = iota
	InputText                  // string
	InputList                  // repeated string
	InputChoice                // enum: one of Choices
	InputInteger               // int32, int64
	InputYesNo                 // bool
	InputTime                  // google.protobuf.Timestamp
)

// DecisionInput is one field of a decision message as people fill it in.
type DecisionInput struct {
	// Name is the field's name in the schema ("amount_usd"): the console
	// form's field name.
	Name string
	// Path names it in validation errors ("funding_request.amount_usd").
	Path string
	// Flag is the CLI flag's name, without dashes ("amount").
	Flag string
	// Label names it in plain words; Help says what to put in it;
	// Placeholder is an example value.
	Label, Help, Placeholder string
	Type                     InputType
	// Required: must be given (a list then needs MinItems, at least 1).
	Required bool
	// Multiline: free text over lines; for a list, one item a line (and, on
	// the CLI, one flag per item).
	Multiline bool
	// ID: a string that is an id; Generated: the gateway makes one up when
	// it is left empty.
	ID, Generated bool
	// Min and Max bound an integer (both 0: any).
	Min, Max int64
	// MinItems is a list's fewest items; MinItemsReason the refusal's words.
	MinItems       int
	MinItemsReason string
	// Choices are an enum's values (UNSPECIFIED left out), in schema order.
	Choices []Choice
	// Default is the value taken when the field is not given ("" : none).
	Default string
	// Source is where the values come from (roster ids, funds); ExpertKind
	// the roster's kind of expert for roster ids ("" : any).
	Source     DecisionInputSource
	ExpertKind string

	field protoreflect.FieldDescriptor
}

// Choice is one value of an enum input: its slug and its words.
type Choice struct {
	Value, Words string
}

var (
	formsOnce sync.Once
	forms     []*DecisionForm
)

// DecisionForms is every decision kind as people take it, in schema order
// (the order of DecisionKinds).
func DecisionForms() []*DecisionForm {
	formsOnce.Do(func() {
		fields := decisionOneof().Fields()
		for i := 0; i < fields.Len(); i++ {
			forms = append(forms, newDecisionForm(fields.Get(i)))
		}
	})
	return forms
}

// DecisionFormOf is the form of a kind (nil: no such kind).
func DecisionFormOf(kind string) *DecisionForm {
	for _, f := range DecisionForms() {
		if f.Kind == kind {
			return f
		}
	}
	return nil
}

func newDecisionForm(fd protoreflect.FieldDescriptor) *DecisionForm {
	o, _ := proto.GetExtension(fd.Options(), E_Kind).(*DecisionKindOptions)
	f := &DecisionForm{Kind: kindOf(fd), Label: o.GetLabel(), Summary: o.GetSummary(), Aliases: o.GetAliases(),
		Example: o.GetExample(), ConsoleNote: o.GetConsoleNote(), field: fd}
	if f.Label == "" {
		f.Label = strings.ReplaceAll(string(fd.Name()), "_", " ")
	}
	if f.Summary == "" {
		f.Summary = "Record a " + f.Label + " decision"
	}
	msg := fd.Message().Fields()
	for i := 0; i < msg.Len(); i++ {
		f.Inputs = append(f.Inputs, newDecisionInput(string(fd.Name()), msg.Get(i)))
	}
	return f
}

func newDecisionInput(kindField string, fd protoreflect.FieldDescriptor) *DecisionInput {
	o, _ := proto.GetExtension(fd.Options(), E_Input).(*DecisionInputOptions)
	in := &DecisionInput{
		Name: string(fd.Name()), Path: kindField + "." + string(fd.Name()), Flag: o.GetFlag(),
		Label: o.GetLabel(), Help: o.GetHelp(), Placeholder: o.GetPlaceholder(),
		Required: o.GetRequired(), Multiline: o.GetMultiline(), ID: o.GetId(), Generated: o.GetGenerated(),
		Min: o.GetMin(), Max: o.GetMax(), MinItems: int(o.GetMinItems()), MinItemsReason: o.GetMinItemsReason(),
		Default: o.GetDefaultValue(), Source: o.GetSource(), ExpertKind: o.GetExpertKind(), field: fd,
	}
	if in.Flag == "" {
		in.Flag = strings.ReplaceAll(in.Name, "_", "-")
	}
	if in.Label == "" {
		in.Label = strings.ToUpper(in.Name[:1]) + strings.ReplaceAll(in.Name[1:], "_", " ")
	}
	if in.MinItems == 0 && in.Required {
		in.MinItems = 1
	}
	list := fd.Cardinality() == protoreflect.Repeated
	switch k := fd.Kind(); {
	case fd.IsMap():
	case k == protoreflect.StringKind && list:
		in.Type = InputList
	case list:
	case k == protoreflect.StringKind:
		in.Type = InputText
	case k == protoreflect.EnumKind:
		in.Type = InputChoice
		vals := fd.Enum().Values()
		for i := 0; i < vals.Len(); i++ {
			if v := vals.Get(i); v.Number() != 0 && Withdrawn(fd.Enum(), v.Number()) == "" {
				in.Choices = append(in.Choices, Choice{Value: enumSlug(fd.Enum(), v.Number()), Words: EnumWords(fd.Enum(), v.Number())})
			}
		}
	case k == protoreflect.Int64Kind || k == protoreflect.Int32Kind:
		in.Type = InputInteger
	case k == protoreflect.BoolKind:
		in.Type = InputYesNo
	case k == protoreflect.MessageKind && fd.Message().FullName() == (&timestamppb.Timestamp{}).ProtoReflect().Descriptor().FullName():
		in.Type = InputTime
	}
	return in
}

// EnumWords is an enum value in words: its (words) option, or its slug with
// spaces ("security council dialogue").
func EnumWords(d protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	if v := d.Values().ByNumber(n); v != nil {
		if w, _ := proto.GetExtension(v.Options(), E_Words).(string); w != "" {
			return w
		}
	}
	return strings.ReplaceAll(enumSlug(d, n), "-", " ")
}

// Withdrawn says why an enum value is no longer offered ("": it is): its
// (withdrawn) option. Forms and flags leave such a value out and refuse it
// in a new decision; a decision recorded with it keeps it.
func Withdrawn(d protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	if v := d.Values().ByNumber(n); v != nil {
		w, _ := proto.GetExtension(v.Options(), E_Withdrawn).(string) // absent: not withdrawn
		return w
	}
	return ""
}

// choiceSlugs are the values a choice input offers, for refusals.
func (in *DecisionInput) choiceSlugs() string {
	out := make([]string, len(in.Choices))
	for i, c := range in.Choices {
		out[i] = c.Value
	}
	return strings.Join(out, ", ")
}

// InputError is a value that could not be read into a field: surfaces name
// the field their own way (a CLI flag, a console label).
type InputError struct {
	Input  *DecisionInput
	Reason string
}

func (e *InputError) Error() string { return e.Input.Path + ": " + e.Reason }

// Unwrap lets callers match ErrInvalid.
func (e *InputError) Unwrap() error { return ErrInvalid }

// Build makes a decision of this kind from typed-in values: values gives the
// strings given for an input (none: not given, and its default applies).
// Principal, roles and rationale are left empty. The result is not
// validated: DecisionRequest.Validate does that wherever it enters.
func (f *DecisionForm) Build(now time.Time, values func(in *DecisionInput) []string) (*DecisionRequest, error) {
	d := (&DecisionRequest{}).ProtoReflect().NewField(f.field).Message()
	for _, in := range f.Inputs {
		raw := values(in)
		if len(raw) == 0 && in.Default != "" {
			raw = []string{in.Default}
		}
		if len(raw) == 0 {
			continue
		}
		if err := in.set(d, raw, now); err != nil {
			return nil, err
		}
	}
	r := &DecisionRequest{}
	r.ProtoReflect().Set(f.field, protoreflect.ValueOfMessage(d))
	return r, nil
}

// set reads raw into the input's field of d.
func (in *DecisionInput) set(d protoreflect.Message, raw []string, now time.Time) error {
	last := raw[len(raw)-1]
	fail := func(format string, args ...any) error {
		return &InputError{Input: in, Reason: fmt.Sprintf(format, args...)}
	}
	switch in.Type {
	case InputText:
		d.Set(in.field, protoreflect.ValueOfString(last))
	case InputList:
		list := d.Mutable(in.field).List()
		for _, item := range in.SplitList(raw) {
			list.Append(protoreflect.ValueOfString(item))
		}
	case InputChoice:
		if strings.TrimSpace(last) == "" {
			return nil
		}
		n, err := parseEnum(in.field.Enum(), strings.ReplaceAll(in.Name, "_", " "), last)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return fail("%s", fe.Reason)
			}
			return fail("%v", err)
		}
		if why := Withdrawn(in.field.Enum(), n); why != "" {
			return fail("%q is no longer offered: %s (allowed: %s)", last, why, in.choiceSlugs())
		}
		d.Set(in.field, protoreflect.ValueOfEnum(n))
	case InputInteger:
		s := strings.NewReplacer(",", "", " ", "", "_", "").Replace(strings.TrimSpace(last))
		if s == "" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || (in.field.Kind() == protoreflect.Int32Kind && int64(int32(n)) != n) {
			return fail("%q is not a whole number", last)
		}
		if in.field.Kind() == protoreflect.Int32Kind {
			d.Set(in.field, protoreflect.ValueOfInt32(int32(n)))
		} else {
			d.Set(in.field, protoreflect.ValueOfInt64(n))
		}
	case InputYesNo:
		switch strings.ToLower(strings.TrimSpace(last)) {
		case "", "false", "no", "off", "0":
		case "true", "yes", "on", "1":
			d.Set(in.field, protoreflect.ValueOfBool(true))
		default:
			return fail("%q is neither yes nor no (true or false)", last)
		}
	case InputTime:
		if strings.TrimSpace(last) == "" {
			return nil
		}
		t, err := ParseWhen(last, now)
		if err != nil {
			return fail("%v", err)
		}
		d.Set(in.field, protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect()))
	default:
		return fail("cannot be typed in (a %s field)", in.field.Kind())
	}
	return nil
}

// SplitList reads a list's items: one a line when Multiline (commas are part
// of an item), otherwise separated by commas or lines; blanks dropped.
func (in *DecisionInput) SplitList(raw []string) []string {
	var out []string
	for _, v := range raw {
		for _, item := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || (r == ',' && !in.Multiline) }) {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// DueHour is the hour (UTC) a date without a time stands for: the end of
// the working day.
const DueHour = 17

// ParseWhen reads a time as people give it: an RFC 3339 time, a date
// (YYYY-MM-DD, at DueHour UTC) or a duration from now such as 720h.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(DueHour * time.Hour), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a date (YYYY-MM-DD) nor a duration such as 720h", s)
}

// FillGenerated gives every empty field marked generated (a funding
// request's id) a new id: the gateway does so before a decision goes on.
func (x *DecisionRequest) FillGenerated(newID func() string) {
	f := DecisionFormOf(x.DecisionKind())
	if f == nil {
		return
	}
	d := x.ProtoReflect().Get(f.field).Message()
	for _, in := range f.Inputs {
		if in.Generated && in.Type == InputText && d.Get(in.field).String() == "" {
			d.Set(in.field, protoreflect.ValueOfString(newID()))
		}
	}
}

// checkInputs applies the inputs' rules to the decision a request carries.
func (c *checker) checkInputs(x *DecisionRequest) {
	f := DecisionFormOf(x.DecisionKind())
	d := x.ProtoReflect().Get(f.field).Message()
	for _, in := range f.Inputs {
		v := d.Get(in.field)
		switch in.Type {
		case InputText:
			if in.ID {
				c.id(in.Path, v.String())
			} else {
				c.text(in.Path, v.String(), in.Required)
			}
		case InputChoice:
			if n := v.Enum(); in.Required || n != 0 {
				if in.field.Enum().Values().ByNumber(n) == nil || n == 0 {
					c.fail(in.Path, "is required (allowed: %s)", in.choiceSlugs())
				}
			}
		case InputList:
			if n := v.List().Len(); n < in.MinItems {
				reason := in.MinItemsReason
				if reason == "" {
					reason = fmt.Sprintf("name at least %d", in.MinItems)
				}
				c.fail(in.Path, "%s", reason)
			}
		case InputInteger:
			if n := v.Int(); (in.Min != 0 || in.Max != 0) && (n < in.Min || n > in.Max) {
				c.fail(in.Path, "%d is out of range (allowed: %d to %d)", n, in.Min, in.Max)
			}
		case InputTime:
			if in.Required || d.Has(in.field) {
				var t *timestamppb.Timestamp
				if d.Has(in.field) {
					t = v.Message().Interface().(*timestamppb.Timestamp)
				}
				c.timestamp(in.Path, t)
			}
		}
	}
}

// Values are the strings a decision holds in one of its form's text or list
// inputs (a list's items, a text's value; nil when empty or another type):
// what a surface checks against where the values come from (roster ids).
func (f *DecisionForm) Values(x *DecisionRequest, in *DecisionInput) []string {
	if x.DecisionKind() != f.Kind {
		return nil
	}
	d := x.ProtoReflect().Get(f.field).Message()
	switch in.Type {
	case InputText:
		if s := d.Get(in.field).String(); s != "" {
			return []string{s}
		}
	case InputList:
		var out []string
		l := d.Get(in.field).List()
		for i := 0; i < l.Len(); i++ {
			out = append(out, l.Get(i).String())
		}
		return out
	}
	return nil
}
