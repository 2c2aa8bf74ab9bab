// Package jsonschema renders protobuf messages as JSON Schemas of their
// protobuf JSON form (what protojson writes), with the schemas' comments as
// descriptions: for the AsyncAPI document, the schema service and the HTTP
// API's OpenAPI document.
package jsonschema

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Comment is a descriptor's leading comment from the schemas, trimmed and on
// one paragraph per blank line ("" when it has none).
func Comment(d protoreflect.Descriptor) string {
	loc := d.ParentFile().SourceLocations().ByDescriptor(d)
	lines := strings.Split(strings.TrimSpace(loc.LeadingComments), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.TrimSpace(strings.ReplaceAll(strings.Join(lines, "\n"), "\n", " "))
}

// Set renders messages and enums as JSON Schemas of their protobuf JSON
// form, one definition per type, referenced by ref.
type Set struct {
	ref  func(protoreflect.FullName) string
	defs map[string]any
	// enumValue writes an enum value (nil: its full name, as protojson does).
	enumValue func(protoreflect.EnumDescriptor, protoreflect.EnumNumber) string
}

// WithEnumValues makes the set describe enums by the values f writes (the
// HTTP API's short values, pkg/apijson) instead of their full names.
func (s *Set) WithEnumValues(f func(protoreflect.EnumDescriptor, protoreflect.EnumNumber) string) *Set {
	s.enumValue = f
	return s
}

// NewSet is an empty set whose references are ref(full name), e.g.
// "#/components/schemas/" + name.
func NewSet(ref func(protoreflect.FullName) string) *Set {
	return &Set{ref: ref, defs: map[string]any{}}
}

// Defs are the definitions added so far, by full name.
func (s *Set) Defs() map[string]any { return s.defs }

// wellKnown maps Google's well-known types to their JSON forms.
func wellKnown(n protoreflect.FullName) (map[string]any, bool) {
	switch n {
	case "google.protobuf.Timestamp":
		return map[string]any{"type": "string", "format": "date-time", "description": "RFC 3339 time, UTC (google.protobuf.Timestamp)"}, true
	case "google.protobuf.Duration":
		return map[string]any{"type": "string", "pattern": `^-?[0-9]+(\.[0-9]{1,9})?s$`, "description": "duration in seconds with an s suffix, e.g. \"3600s\" (google.protobuf.Duration)"}, true
	case "google.protobuf.Struct":
		return map[string]any{"type": "object"}, true
	case "google.protobuf.Value", "google.protobuf.Any":
		return map[string]any{}, true
	case "google.protobuf.Empty":
		return map[string]any{"type": "object", "additionalProperties": false}, true
	case "google.protobuf.FieldMask":
		return map[string]any{"type": "string"}, true
	case "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return map[string]any{"type": "string"}, true
	case "google.protobuf.BoolValue":
		return map[string]any{"type": "boolean"}, true
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value":
		return map[string]any{"type": "integer"}, true
	case "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		return map[string]any{"type": []any{"string", "integer"}}, true
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		return map[string]any{"type": "number"}, true
	}
	return nil, false
}

// Message adds a message (and every type it uses) and returns a reference to it.
func (s *Set) Message(md protoreflect.MessageDescriptor) map[string]any {
	if wk, ok := wellKnown(md.FullName()); ok {
		return wk
	}
	key := string(md.FullName())
	if _, done := s.defs[key]; !done {
		s.defs[key] = nil // placeholder: recursive types
		props := map[string]any{}
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			fs := s.field(f)
			if c := Comment(f); c != "" {
				fs = withDescription(fs, c)
			}
			props[f.JSONName()] = fs
		}
		def := map[string]any{
			"type":                 "object",
			"title":                key,
			"properties":           props,
			"additionalProperties": false,
		}
		if c := Comment(md); c != "" {
			def["description"] = c
		}
		s.defs[key] = def
	}
	return map[string]any{"$ref": s.ref(md.FullName())}
}

// MessageOnly adds a copy of a message cut down to the fields keep allows
// (the messages it uses cut down alike), named prefix + its full name, and
// returns a reference to it: e.g. what a partner organisation receives of an
// event (pkg/partnerview.Fields).
func (s *Set) MessageOnly(md protoreflect.MessageDescriptor, keep func(protoreflect.FieldDescriptor) bool, prefix string) map[string]any {
	if wk, ok := wellKnown(md.FullName()); ok {
		return wk
	}
	name := protoreflect.FullName(prefix + string(md.FullName()))
	key := string(name)
	if _, done := s.defs[key]; !done {
		s.defs[key] = nil // placeholder: recursive types
		props := map[string]any{}
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			if !keep(f) {
				continue
			}
			var fs map[string]any
			switch {
			case f.IsMap() || f.Message() == nil:
				fs = s.field(f)
			case f.IsList():
				fs = map[string]any{"type": "array", "items": s.MessageOnly(f.Message(), keep, prefix)}
			default:
				fs = s.MessageOnly(f.Message(), keep, prefix)
			}
			if c := Comment(f); c != "" {
				fs = withDescription(fs, c)
			}
			props[f.JSONName()] = fs
		}
		def := map[string]any{
			"type":                 "object",
			"title":                key,
			"properties":           props,
			"additionalProperties": false,
		}
		if c := Comment(md); c != "" {
			def["description"] = c
		}
		s.defs[key] = def
	}
	return map[string]any{"$ref": s.ref(name)}
}

// withDescription adds a description; a bare $ref is wrapped so tools that
// ignore a $ref's siblings still see a valid schema.
func withDescription(fs map[string]any, c string) map[string]any {
	if _, isRef := fs["$ref"]; isRef {
		return map[string]any{"allOf": []any{fs}, "description": c}
	}
	out := map[string]any{}
	for k, v := range fs {
		out[k] = v
	}
	if d, ok := out["description"].(string); ok && d != "" {
		c = c + " (" + d + ")"
	}
	out["description"] = c
	return out
}

func (s *Set) enum(ed protoreflect.EnumDescriptor) map[string]any {
	key := string(ed.FullName())
	if _, done := s.defs[key]; !done {
		var names []any
		var docs []string
		vals := ed.Values()
		for i := 0; i < vals.Len(); i++ {
			v := vals.Get(i)
			name := string(v.Name())
			if s.enumValue != nil {
				name = s.enumValue(ed, v.Number())
			}
			names = append(names, name)
			if c := Comment(v); c != "" {
				docs = append(docs, name+": "+c)
			}
		}
		if s.enumValue != nil {
			docs = append(docs, "bodies also accept the full names (e.g. "+string(vals.Get(min(1, vals.Len()-1)).Name())+")")
		}
		def := map[string]any{"type": "string", "title": key, "enum": names}
		desc := Comment(ed)
		if len(docs) > 0 {
			desc = strings.TrimSpace(desc + " " + strings.Join(docs, "; "))
		}
		if desc != "" {
			def["description"] = desc
		}
		s.defs[key] = def
	}
	return map[string]any{"$ref": s.ref(ed.FullName())}
}

func (s *Set) field(f protoreflect.FieldDescriptor) map[string]any {
	if f.IsMap() {
		return map[string]any{"type": "object", "additionalProperties": s.single(f.MapValue())}
	}
	if f.IsList() {
		return map[string]any{"type": "array", "items": s.single(f)}
	}
	return s.single(f)
}

func (s *Set) single(f protoreflect.FieldDescriptor) map[string]any {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return map[string]any{"type": "boolean"}
	case protoreflect.StringKind:
		return map[string]any{"type": "string"}
	case protoreflect.BytesKind:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return map[string]any{"type": "integer", "format": "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return map[string]any{"type": "integer", "format": "uint32", "minimum": 0}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return map[string]any{"type": []any{"string", "integer"}, "format": "int64", "description": "64-bit integer, written as a decimal string"}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return map[string]any{"type": []any{"string", "integer"}, "format": "uint64", "description": "64-bit integer, written as a decimal string"}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return map[string]any{"type": "number"}
	case protoreflect.EnumKind:
		return s.enum(f.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return s.Message(f.Message())
	}
	return map[string]any{}
}

// Standalone renders one message as a standalone JSON Schema (2020-12) of
// its protobuf JSON form, with every type it uses under $defs.
func Standalone(md protoreflect.MessageDescriptor, id string) map[string]any {
	s := NewSet(func(n protoreflect.FullName) string { return "#/$defs/" + string(n) })
	root := s.Message(md)
	doc := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$ref":    root["$ref"],
		"$defs":   s.defs,
	}
	if id != "" {
		doc["$id"] = id
	}
	return doc
}
