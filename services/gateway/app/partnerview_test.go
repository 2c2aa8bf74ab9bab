package app

import (
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// partnerMay are the fields a partner's view may carry: the whitelist of
// PartnerView, written out again so a change to it is a change here too.
var partnerMay = map[protoreflect.FullName]bool{
	"demarche.v1.CrisisState.crisis": true, "demarche.v1.CrisisState.current_stage": true,
	"demarche.v1.CrisisState.active_stages": true, "demarche.v1.CrisisState.closed_at": true,
	"demarche.v1.CrisisState.outcome": true, "demarche.v1.CrisisState.public_engagements": true,
	"demarche.v1.CrisisState.timeline": true, "demarche.v1.CrisisState.partners": true,
	"demarche.v1.Crisis.id": true, "demarche.v1.Crisis.title": true, "demarche.v1.Crisis.country_code": true,
	"demarche.v1.Crisis.region": true, "demarche.v1.Crisis.crisis_type": true, "demarche.v1.Crisis.severity": true,
	"demarche.v1.Crisis.confidentiality": true, "demarche.v1.Crisis.opened_at": true, "demarche.v1.Crisis.drill": true,
	"demarche.v1.Crisis.shared_with": true,
	"demarche.v1.StageRecord.stage":  true, "demarche.v1.StageRecord.entered_at": true, "demarche.v1.StageRecord.completed_at": true,
	"demarche.v1.StageRecord.duration": true, "demarche.v1.StageRecord.status": true, "demarche.v1.StageRecord.run": true,
	"demarche.v1.PartnerRoleAck.partner": true, "demarche.v1.PartnerRoleAck.role": true, "demarche.v1.PartnerRoleAck.acknowledged_at": true,
}

// fill sets every field of m, recursively, to a value that is not the
// default: whatever CrisisState holds now or later, the fields are set.
func fill(m protoreflect.Message, depth int) {
	if depth > 8 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.ContainingOneof() != nil && !f.ContainingOneof().IsSynthetic() && m.WhichOneof(f.ContainingOneof()) != nil {
			continue // one member of a oneof
		}
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(scalar(f.MapKey()).MapKey(), valueOf(m, f.MapValue(), mp.NewValue, depth))
		case f.IsList():
			l := m.Mutable(f).List()
			l.Append(valueOf(m, f, l.NewElement, depth))
		default:
			m.Set(f, valueOf(m, f, func() protoreflect.Value { return m.NewField(f) }, depth))
		}
	}
}

func valueOf(_ protoreflect.Message, f protoreflect.FieldDescriptor, newMsg func() protoreflect.Value, depth int) protoreflect.Value {
	if f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind {
		v := newMsg()
		fill(v.Message(), depth+1)
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
		return protoreflect.ValueOfBytes([]byte("PLANTED"))
	default:
		return protoreflect.ValueOfString("PLANTED")
	}
}

// populated lists the fields set in m, recursively (well-known types'
// insides left out: a timestamp is one value).
func populated(m protoreflect.Message, out map[protoreflect.FullName]bool) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		out[f.FullName()] = true
		if f.Kind() != protoreflect.MessageKind || strings.HasPrefix(string(f.Message().FullName()), "google.protobuf.") {
			return true
		}
		switch {
		case f.IsMap():
		case f.IsList():
			for i := 0; i < v.List().Len(); i++ {
				populated(v.List().Get(i).Message(), out)
			}
		default:
			populated(v.Message(), out)
		}
		return true
	})
}

// TestPartnerViewIsAWhitelist fills every field of a CrisisState (so a field
// added to it later is filled too) and checks the partner's view carries
// only the fields partners may see: a new field is hidden until it is
// whitelisted in PartnerView. A view made by clearing a list of internal
// fields would leak the new one and fail here.
func TestPartnerViewIsAWhitelist(t *testing.T) {
	st := &demarchev1.CrisisState{}
	fill(st.ProtoReflect(), 0)
	full := map[protoreflect.FullName]bool{}
	populated(st.ProtoReflect(), full)
	if len(full) < 60 {
		t.Fatalf("the filled state sets only %d fields: fill does not reach them all", len(full))
	}
	view := PartnerView(st, "PLANTED") // the filled partner and sharing are "PLANTED"
	got := map[protoreflect.FullName]bool{}
	populated(view.ProtoReflect(), got)
	var leaked, missing []string
	for f := range got {
		if !partnerMay[f] {
			leaked = append(leaked, string(f))
		}
	}
	for f := range partnerMay {
		if !got[f] {
			missing = append(missing, string(f))
		}
	}
	sort.Strings(leaked)
	sort.Strings(missing)
	if len(leaked) > 0 {
		t.Errorf("the partner's view carries fields not whitelisted for partners: %s", strings.Join(leaked, ", "))
	}
	if len(missing) > 0 {
		t.Errorf("the partner's view lacks whitelisted fields (the test's list and PartnerView differ): %s", strings.Join(missing, ", "))
	}
	// Another organisation's role and sharing are not this partner's to see.
	if other := PartnerView(st, "ECOWAS"); len(other.GetPartners()) != 0 || len(other.GetCrisis().GetSharedWith()) != 0 {
		t.Errorf("ECOWAS's view shows another organisation's role or sharing: %v", other)
	}
	// The view is a copy: the original state is left whole.
	view.Crisis.OpenedAt.Seconds = 1
	if st.GetCrisis().GetOpenedAt().GetSeconds() == 1 {
		t.Error("the partner's view shares its timestamps with the state it was made from")
	}
}
