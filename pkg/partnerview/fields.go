package partnerview

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldsPartner is the organisation Fields projects for: every field of the
// filled event names it, so nothing is left out for naming another.
const fieldsPartner = "PARTNER"

// Fields is the set of fields (by full name, nested messages' fields too) a
// partner's copy of an event of type mt may carry, and whether partners
// receive the type at all. It is derived from Event, by filling every field
// of an event and projecting it for the organisation every field names, so
// the published contract (docs/events.md, docs/asyncapi.json) says what is
// delivered and cannot drift from it.
func Fields(mt protoreflect.MessageType) (map[protoreflect.FullName]bool, bool) {
	m := mt.New()
	Fill(m, func(protoreflect.FieldDescriptor) string { return fieldsPartner })
	copied := Event(m.Interface(), fieldsPartner)
	if copied == nil {
		return nil, false
	}
	out := map[protoreflect.FullName]bool{}
	SetFields(copied.ProtoReflect(), out)
	return out, true
}

// Fill sets every field of m, recursively (8 levels at most, one member of
// each oneof), to a value that is not the default: numbers 7, booleans true,
// enums their first non-zero value, strings and bytes what text says for
// the field. Fields uses it to derive the delivered fields; the allow-list
// tests use it with a marker per field, so a field added to a message later
// is filled (and must be allow-listed to reach a partner) without a change
// to any test.
func Fill(m protoreflect.Message, text func(protoreflect.FieldDescriptor) string) {
	fill(m, text, 0)
}

func fill(m protoreflect.Message, text func(protoreflect.FieldDescriptor) string, depth int) {
	if depth > 8 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() && m.WhichOneof(o) != nil {
			continue // one member of a oneof
		}
		value := func(f protoreflect.FieldDescriptor, newMsg func() protoreflect.Value) protoreflect.Value {
			if f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind {
				v := newMsg()
				fill(v.Message(), text, depth+1)
				return v
			}
			return scalar(f, text)
		}
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(scalar(f.MapKey(), text).MapKey(), value(f.MapValue(), mp.NewValue))
		case f.IsList():
			l := m.Mutable(f).List()
			l.Append(value(f, l.NewElement))
		default:
			m.Set(f, value(f, func() protoreflect.Value { return m.NewField(f) }))
		}
	}
}

func scalar(f protoreflect.FieldDescriptor, text func(protoreflect.FieldDescriptor) string) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(7)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(7)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(7)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(7)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(7)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(7)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(text(f)))
	default:
		return protoreflect.ValueOfString(text(f))
	}
}

// SetFields collects the fields set in m, recursively (well-known types'
// insides left out: a timestamp is one value).
func SetFields(m protoreflect.Message, out map[protoreflect.FullName]bool) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		out[f.FullName()] = true
		if f.Kind() != protoreflect.MessageKind || f.IsMap() || f.Message().ParentFile().Package() == "google.protobuf" {
			return true
		}
		if f.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				SetFields(v.List().Get(i).Message(), out)
			}
			return true
		}
		SetFields(v.Message(), out)
		return true
	})
}
