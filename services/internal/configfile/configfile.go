// Package configfile reads the lists an operator configures (funds, the
// roster) from a YAML or JSON file, and says precisely what is wrong with a
// bad one: the file and line, the entry, the field, why, and what is allowed.
//
// An entry is decoded field by field from its protobuf message's descriptor
// (field names as in the .proto, snake_case, or their JSON camelCase; enums by
// slug or name), so the file's vocabulary is the schema's, and then checked
// by the message's own Validate: the rules live in one place per message
// (proto/demarche/v1/validate*.go), whoever feeds the message.
package configfile

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// ErrInvalid is matched (errors.Is) by every problem of a configuration file;
// so is errs.ErrInvalid.
var ErrInvalid = errors.New("invalid configuration file")

// Problem is one problem of a file: where, which entry and field, and why.
type Problem struct {
	Line   int
	Entry  string // e.g. `funds[2] (id "peacebuilding-irf")`; "" for the file itself
	Field  string
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Entry != "" {
		b.WriteString(p.Entry + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Error lists every problem found in one file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = e.File + ": " + p.String()
	}
	return fmt.Sprintf("%v %s (%d problem(s)):\n  %s", ErrInvalid, e.File, len(e.Problems), strings.Join(lines, "\n  "))
}

// Unwrap lets callers match ErrInvalid and errs.ErrInvalid.
func (e *Error) Unwrap() []error { return []error{ErrInvalid, errs.ErrInvalid} }

// Entry is one decoded entry and where it is.
type Entry[M proto.Message] struct {
	Msg  M
	Name string // funds[2] (id "x")
	Line int
	// FieldLines are the lines of the fields the entry gave.
	FieldLines map[string]int
}

// Parser collects problems while a file is read.
type Parser struct {
	file     string
	problems []Problem
}

// Fail records a problem.
func (p *Parser) Fail(line int, entry, field, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: line, Entry: entry, Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Err is the file's problems, or nil.
func (p *Parser) Err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return &Error{File: p.file, Problems: p.problems}
}

// List reads file (named file in messages): a mapping with the one key
// listKey holding a non-empty list of entries, each a mapping of the
// message's fields. Each entry is decoded into newMsg() and checked by its
// Validate; problems of every entry are collected (the Parser carries them,
// for checks across entries), nothing stops at the first.
func List[M interface {
	proto.Message
	Validate() error
}](file string, data []byte, listKey string, newMsg func() M) ([]Entry[M], *Parser) {
	p := &Parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.Fail(yamlLine(err), "", "", "not YAML or JSON: %v", err)
		return nil, p
	}
	if len(doc.Content) == 0 {
		p.Fail(0, "", "", "the file is empty: it must hold %q, a list of entries", listKey)
		return nil, p
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.Fail(root.Line, "", "", "must be a mapping with the one key %q (a list of entries)", listKey)
		return nil, p
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case k.Value != listKey:
			p.Fail(k.Line, "", k.Value, "unknown key (allowed: %s)", listKey)
		case list != nil:
			p.Fail(k.Line, "", k.Value, "is given twice")
		default:
			list = v
		}
	}
	if list == nil {
		if len(p.problems) == 0 {
			p.Fail(root.Line, "", listKey, "is missing: the file must hold %q, a list of entries", listKey)
		}
		return nil, p
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		p.Fail(list.Line, "", listKey, "must be a non-empty list of entries")
		return nil, p
	}
	var out []Entry[M]
	for i, n := range list.Content {
		e := Entry[M]{Msg: newMsg(), Name: fmt.Sprintf("%s[%d]", listKey, i), Line: n.Line, FieldLines: map[string]int{}}
		if n.Kind != yaml.MappingNode {
			p.Fail(n.Line, e.Name, "", "must be a mapping of fields (%s)", strings.Join(fieldNames(e.Msg.ProtoReflect().Descriptor()), ", "))
			continue
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "id" && n.Content[j+1].Kind == yaml.ScalarNode {
				e.Name += fmt.Sprintf(" (id %q)", n.Content[j+1].Value)
			}
		}
		ok := p.decode(n, e.Name, e.FieldLines, e.Msg.ProtoReflect())
		if !ok {
			continue
		}
		if err := e.Msg.Validate(); err != nil {
			var ve *demarchev1.ValidationError
			if errors.As(err, &ve) {
				for _, f := range ve.Fields {
					line := e.FieldLines[strings.SplitN(f.Field, ".", 2)[0]]
					if line == 0 {
						line = e.Line
					}
					p.Fail(line, e.Name, f.Field, "%s", f.Reason)
				}
			} else {
				p.Fail(e.Line, e.Name, "", "%v", err)
			}
			continue
		}
		out = append(out, e)
	}
	return out, p
}

func fieldNames(d protoreflect.MessageDescriptor) []string {
	var names []string
	for i := 0; i < d.Fields().Len(); i++ {
		names = append(names, string(d.Fields().Get(i).Name()))
	}
	return names
}

// decode sets the message's fields from a mapping node; false when a
// problem was found.
func (p *Parser) decode(n *yaml.Node, entry string, lines map[string]int, m protoreflect.Message) bool {
	d := m.Descriptor()
	ok := true
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		fd := d.Fields().ByName(protoreflect.Name(k.Value))
		if fd == nil {
			fd = d.Fields().ByJSONName(k.Value)
		}
		if fd == nil {
			p.Fail(k.Line, entry, k.Value, "unknown field (allowed: %s)", strings.Join(fieldNames(d), ", "))
			ok = false
			continue
		}
		name := string(fd.Name())
		if _, dup := lines[name]; dup {
			p.Fail(k.Line, entry, name, "is given twice")
			ok = false
			continue
		}
		lines[name] = k.Line
		if fd.IsList() {
			if v.Kind != yaml.SequenceNode {
				p.Fail(v.Line, entry, name, "must be a list, e.g. [a, b]")
				ok = false
				continue
			}
			l := m.Mutable(fd).List()
			for i, item := range v.Content {
				// A list of messages (a fund's quorum rules): each item a
				// mapping of the message's fields, decoded the same way.
				if fd.Kind() == protoreflect.MessageKind && item.Kind == yaml.MappingNode {
					el := l.NewElement()
					if !p.decode(item, fmt.Sprintf("%s %s[%d]", entry, name, i), map[string]int{}, el.Message()) {
						ok = false
						continue
					}
					l.Append(el)
					continue
				}
				val, err := scalar(fd, item)
				if err != "" {
					p.Fail(item.Line, entry, name, "%s", err)
					ok = false
					continue
				}
				l.Append(val)
			}
			continue
		}
		if fd.IsMap() || fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			p.Fail(k.Line, entry, name, "cannot be configured in this file")
			ok = false
			continue
		}
		val, err := scalar(fd, v)
		if err != "" {
			p.Fail(v.Line, entry, name, "%s", err)
			ok = false
			continue
		}
		m.Set(fd, val)
	}
	return ok
}

// scalar decodes one value of a field's kind; the string is why it cannot.
func scalar(fd protoreflect.FieldDescriptor, n *yaml.Node) (protoreflect.Value, string) {
	if n.Kind != yaml.ScalarNode {
		return protoreflect.Value{}, "must be a single value, not a list or mapping"
	}
	s := n.Value
	switch fd.Kind() {
	case protoreflect.StringKind:
		if n.Tag != "!!str" && n.Tag != "" {
			return protoreflect.Value{}, fmt.Sprintf("%s must be text (quote it)", s)
		}
		return protoreflect.ValueOfString(s), ""
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		if err != nil || n.Tag != "!!bool" {
			return protoreflect.Value{}, fmt.Sprintf("%q must be true or false", s)
		}
		return protoreflect.ValueOfBool(b), ""
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil || n.Tag == "!!str" {
			return protoreflect.Value{}, fmt.Sprintf("%q must be a whole number (digits, '_' allowed between them: 5_000_000)", s)
		}
		if fd.Kind() == protoreflect.Int64Kind || fd.Kind() == protoreflect.Sint64Kind || fd.Kind() == protoreflect.Sfixed64Kind {
			return protoreflect.ValueOfInt64(i), ""
		}
		if i < math.MinInt32 || i > math.MaxInt32 {
			return protoreflect.Value{}, fmt.Sprintf("%s is out of range", s)
		}
		return protoreflect.ValueOfInt32(int32(i)), ""
	case protoreflect.EnumKind:
		v, err := demarchev1.ParseEnumValue(fd.Enum(), string(fd.Name()), s)
		if err != nil {
			var fe *demarchev1.FieldError
			if errors.As(err, &fe) {
				return protoreflect.Value{}, fe.Reason
			}
			return protoreflect.Value{}, err.Error()
		}
		return protoreflect.ValueOfEnum(v), ""
	}
	return protoreflect.Value{}, "cannot be configured in this file"
}

// yamlLine finds "line N" in a YAML error.
func yamlLine(err error) int {
	s := err.Error()
	if i := strings.Index(s, "line "); i >= 0 {
		var n int
		if _, e := fmt.Sscanf(s[i:], "line %d", &n); e == nil {
			return n
		}
	}
	return 0
}
