// Package apijson is the one JSON style of the HTTP API, in one place: the
// gateway writes every answer and reads every body with it, and the CLI
// reads the answers and prints --output json with it.
//
// The style is the protobuf JSON mapping (protojson: lowerCamelCase field
// names, every field present, 64-bit integers as strings, durations as
// strings such as "3600s", timestamps in RFC 3339), with one change: enum
// values are written as short readable values, the value's name without its
// enum's prefix, in lower case with '-' ("stage": "good-offices" for
// STAGE_GOOD_OFFICES, "confidentiality": "restricted"). Bodies accept the
// short values and the full enum names alike.
//
// Events on NATS are not concerned: they carry protobuf binary data, and the
// JSON form of their schemas (docs/asyncapi.json) stays protojson's.
package apijson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// EnumValue is an enum value as the API writes it, e.g. "good-offices".
func EnumValue(d protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	return demarchev1.EnumValueSlug(d, n)
}

// EnumValues lists every value of an enum as the API writes it, in
// declaration order (the unspecified value, what an unset field shows, first).
func EnumValues(d protoreflect.EnumDescriptor) []string {
	out := make([]string, d.Values().Len())
	for i := range out {
		out[i] = EnumValue(d, d.Values().Get(i).Number())
	}
	return out
}

// Marshal writes a message in the API's style, compact.
func Marshal(m proto.Message) ([]byte, error) { return marshal(m, "") }

// MarshalIndent writes a message in the API's style, indented for people.
func MarshalIndent(m proto.Message) ([]byte, error) { return marshal(m, "  ") }

func marshal(m proto.Message, indent string) ([]byte, error) {
	raw, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(raw) + len(raw)/4)
	if err := encode(&buf, writeMessage(m.ProtoReflect().Descriptor(), v)); err != nil {
		return nil, err
	}
	if indent == "" {
		return buf.Bytes(), nil
	}
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", indent); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Unmarshal reads a body into m: the protobuf JSON mapping, enum values
// short or full. Unknown fields are refused (a misspelt field is an error,
// not silently dropped), and an unknown enum value is a field error listing
// the allowed values.
func Unmarshal(b []byte, m proto.Message) error { return unmarshal(b, m, false) }

// UnmarshalLenient is Unmarshal that ignores fields it does not know (a
// client reading answers of a newer server).
func UnmarshalLenient(b []byte, m proto.Message) error { return unmarshal(b, m, true) }

func unmarshal(b []byte, m proto.Message, discard bool) error {
	opts := protojson.UnmarshalOptions{DiscardUnknown: discard}
	v, err := decode(b)
	if err != nil {
		return opts.Unmarshal(b, m) // protojson says what is wrong, and where
	}
	v, err = readMessage(m.ProtoReflect().Descriptor(), v, "")
	if err != nil {
		return err
	}
	norm, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return opts.Unmarshal(norm, m)
}

// decode reads JSON keeping numbers as written (int64 and doubles intact).
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// wellKnown messages have JSON forms of their own (strings, any value);
// every other message, google.protobuf's descriptors included, is an object
// of its fields in the API's style.
func wellKnown(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.Struct", "google.protobuf.Value",
		"google.protobuf.ListValue", "google.protobuf.Any", "google.protobuf.FieldMask", "google.protobuf.Empty",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		return true
	}
	return false
}

// object is a JSON object written in the order of its message's fields.
type object []member

type member struct {
	key string
	val any
}

// encode writes a decoded JSON value: objects of messages in field order,
// maps by sorted key, numbers as written.
func encode(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case object:
		buf.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, m.key)
			buf.WriteByte(':')
			if err := encode(buf, m.val); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := encode(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encode(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case string:
		writeString(buf, x)
	case json.Number:
		buf.WriteString(string(x))
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case nil:
		buf.WriteString("null")
	default:
		return fmt.Errorf("apijson: unexpected %T", v)
	}
	return nil
}

// writeString writes a JSON string; plain ones (the usual case) directly,
// others through encoding/json without HTML escaping.
func writeString(buf *bytes.Buffer, s string) {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes, and a bytes.Buffer's Write never fails
	buf.Truncate(buf.Len() - 1) // Encode's newline
}

// writeMessage turns protojson's form of a message into the API's.
func writeMessage(md protoreflect.MessageDescriptor, v any) any {
	obj, ok := v.(map[string]any)
	if !ok || wellKnown(md) {
		return v
	}
	out := make(object, 0, len(obj))
	fields := md.Fields()
	done := map[string]bool{}
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		fv, ok := obj[f.JSONName()]
		if !ok {
			continue
		}
		done[f.JSONName()] = true
		out = append(out, member{f.JSONName(), writeField(f, fv)})
	}
	var rest []string
	for k := range obj {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		out = append(out, member{k, obj[k]})
	}
	return out
}

func writeField(f protoreflect.FieldDescriptor, v any) any {
	switch {
	case f.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := map[string]any{}
		for k, e := range obj {
			out[k] = writeSingle(f.MapValue(), e)
		}
		return out
	case f.IsList():
		list, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = writeSingle(f, e)
		}
		return out
	}
	return writeSingle(f, v)
}

func writeSingle(f protoreflect.FieldDescriptor, v any) any {
	switch f.Kind() {
	case protoreflect.EnumKind:
		s, ok := v.(string)
		if !ok || f.Enum().FullName() == "google.protobuf.NullValue" {
			return v
		}
		if ev := f.Enum().Values().ByName(protoreflect.Name(s)); ev != nil {
			return EnumValue(f.Enum(), ev.Number())
		}
		return v
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return writeMessage(f.Message(), v)
	}
	return v
}

// readMessage turns a body's form of a message into protojson's: short enum
// values become full names. Anything it does not understand is left for
// protojson to refuse with its own message.
func readMessage(md protoreflect.MessageDescriptor, v any, at string) (any, error) {
	obj, ok := v.(map[string]any)
	if !ok || wellKnown(md) {
		return v, nil
	}
	fields := md.Fields()
	for k, fv := range obj {
		f := fields.ByJSONName(k)
		if f == nil {
			f = fields.ByName(protoreflect.Name(k))
		}
		if f == nil {
			continue
		}
		name := join(at, string(f.Name()))
		var err error
		switch {
		case f.IsMap():
			if m, ok := fv.(map[string]any); ok {
				for mk, e := range m {
					if m[mk], err = readSingle(f.MapValue(), e, name+"."+mk); err != nil {
						return nil, err
					}
				}
			}
		case f.IsList():
			if list, ok := fv.([]any); ok {
				for i, e := range list {
					if list[i], err = readSingle(f, e, fmt.Sprintf("%s[%d]", name, i)); err != nil {
						return nil, err
					}
				}
			}
		default:
			if obj[k], err = readSingle(f, fv, name); err != nil {
				return nil, err
			}
		}
	}
	return obj, nil
}

func readSingle(f protoreflect.FieldDescriptor, v any, at string) (any, error) {
	switch f.Kind() {
	case protoreflect.EnumKind:
		s, ok := v.(string)
		if !ok || f.Enum().FullName() == "google.protobuf.NullValue" {
			return v, nil // a number or null: protojson's to judge
		}
		return readEnum(f.Enum(), s, at)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return readMessage(f.Message(), v, at)
	}
	return v, nil
}

// readEnum accepts a value's full name, its short value, or its name without
// the prefix, in any case.
func readEnum(d protoreflect.EnumDescriptor, s, at string) (any, error) {
	if d.Values().ByName(protoreflect.Name(s)) != nil {
		return s, nil
	}
	want := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "_", "-"))
	vals := d.Values()
	for i := 0; i < vals.Len(); i++ {
		ev := vals.Get(i)
		if want == EnumValue(d, ev.Number()) || want == strings.ToLower(strings.ReplaceAll(string(ev.Name()), "_", "-")) {
			return string(ev.Name()), nil
		}
	}
	shown := s
	if len(shown) > 40 {
		shown = shown[:40] + "…"
	}
	return nil, &demarchev1.FieldError{Field: at, Reason: fmt.Sprintf("%q is not a known value (allowed: %s)", shown, strings.Join(EnumValues(d)[1:], ", "))}
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}
