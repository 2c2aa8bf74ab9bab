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
	fillAll(m, 0)
	copied := Event(m.Interface(), fieldsPartner)
	if copied == nil {
		return nil, false
	}
	out := map[protoreflect.FullName]bool{}
	setFields(copied.ProtoReflect(), out)
	return out, true
}

// fillAll sets every field of m, recursively, to a value that is not the
// default (strings: the organisation Fields projects for).
func fillAll(m protoreflect.Message, depth int) {
	if depth > 8 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() && m.WhichOneof(o) != nil {
			continue // one member of a oneof
		}
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(scalar(f.MapKey()).MapKey(), fillValue(f.MapValue(), mp.NewValue, depth))
		case f.IsList():
			l := m.Mutable(f).List()
			l.Append(fillValue(f, l.NewElement, depth))
		default:
			m.Set(f, fillValue(f, func() protoreflect.Value { return m.NewField(f) }, depth))
		}
	}
}

func fillValue(f protoreflect.FieldDescriptor, newMsg func() protoreflect.Value, depth int) protoreflect.Value {
	if f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind {
		v := newMsg()
		fillAll(v.Message(), depth+1)
		return v
	}
	return scalar(f)
}

func scalar(f protoreflect.FieldDescriptor) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(1)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(1)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fieldsPartner))
	default:
		return protoreflect.ValueOfString(fieldsPartner)
	}
}

// setFields collects the fields set in m, recursively (well-known types'
// insides left out: a timestamp is one value).
func setFields(m protoreflect.Message, out map[protoreflect.FullName]bool) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		out[f.FullName()] = true
		if f.Kind() != protoreflect.MessageKind || f.IsMap() || f.Message().ParentFile().Package() == "google.protobuf" {
			return true
		}
		if f.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				setFields(v.List().Get(i).Message(), out)
			}
			return true
		}
		setFields(v.Message(), out)
		return true
	})
}
