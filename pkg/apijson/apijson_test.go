package apijson

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

func state() *demarchev1.CrisisState {
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	return &demarchev1.CrisisState{
		Crisis: &demarchev1.Crisis{Id: "GN-20261128-K7Q3P", Title: "Démarche \"<quiet>\" & talks\n\t\u00a0", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
			CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED,
			OpenedAt: timestamppb.New(at), SharedWith: []string{"ECOWAS"}},
		CurrentStage: demarchev1.Stage_STAGE_GOOD_OFFICES,
		ActiveStages: []demarchev1.Stage{demarchev1.Stage_STAGE_GOOD_OFFICES, demarchev1.Stage_STAGE_FACT_FINDING},
		Timeline:     []*demarchev1.StageRecord{{Stage: demarchev1.Stage_STAGE_WARNING, Duration: durationpb.New(2*time.Hour + 14*time.Minute)}},
		Figures:      &demarchev1.ClosureFigures{FundingDisbursedUsd: 250000},
	}
}

func TestMarshalWritesShortEnumsInFieldOrder(t *testing.T) {
	b, err := Marshal(state())
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"currentStage":"good-offices"`, `"activeStages":["good-offices","fact-finding"]`,
		`"confidentiality":"restricted"`, `"crisisType":"unconstitutional-change"`, `"region":"africa"`,
		`"outcome":"unspecified"`, `"duration":"8040s"`, `"openedAt":"2026-11-28T08:00:00Z"`, `"fundingDisbursedUsd":"250000"`} {
		if !strings.Contains(s, want) {
			t.Errorf("answer lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "STAGE_") || strings.Contains(s, "CONFIDENTIALITY_") {
		t.Errorf("full enum names written:\n%s", s)
	}
	if !strings.HasPrefix(s, `{"crisis":{"id":"GN-20261128-K7Q3P","title":"Démarche \"<quiet>\" & talks\n\t`) {
		t.Errorf("fields not in the schema's order: %.80s", s)
	}
	// What is written reads back the same.
	var back demarchev1.CrisisState
	if err := Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, state()) {
		t.Fatalf("round trip changed the state:\n%v\n%v", &back, state())
	}
}

func TestUnmarshalAcceptsShortAndFullEnumNames(t *testing.T) {
	for _, v := range []string{"good-offices", "STAGE_GOOD_OFFICES", "GOOD_OFFICES", "Good-Offices"} {
		var c demarchev1.StageControl
		if err := Unmarshal([]byte(`{"reason": "x", "stage": "`+v+`"}`), &c); err != nil || c.GetStage() != demarchev1.Stage_STAGE_GOOD_OFFICES {
			t.Errorf("stage %q: %v %v", v, c.GetStage(), err)
		}
	}
	var req demarchev1.OpenCrisisRequest
	if err := Unmarshal([]byte(`{"crisis": {"crisis_type": "general", "confidentiality": "confidential"}}`), &req); err != nil ||
		req.GetCrisis().GetConfidentiality() != demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL || req.GetCrisis().GetCrisisType() != demarchev1.CrisisType_CRISIS_TYPE_GENERAL {
		t.Fatalf("proto names and short values: %v %v", &req, err)
	}
	var c demarchev1.StageControl
	err := Unmarshal([]byte(`{"stage": "nope"}`), &c)
	var fe *demarchev1.FieldError
	if !errors.As(err, &fe) || fe.Field != "stage" || !strings.Contains(fe.Reason, "allowed: warning, good-offices") {
		t.Fatalf("unknown value: %v", err)
	}
	if err := Unmarshal([]byte(`{"bogus": 1}`), &c); err == nil {
		t.Fatal("an unknown field is accepted")
	}
	if err := UnmarshalLenient([]byte(`{"bogus": 1, "stage": "warning"}`), &c); err != nil || c.GetStage() != demarchev1.Stage_STAGE_WARNING {
		t.Fatalf("lenient: %v", err)
	}
	for _, bad := range []string{``, `[`, `{"stage": {"x": 1}}`, `{"reason": 5}`, `null`, `{"stage": 2}`} {
		_ = Unmarshal([]byte(bad), &c) // no panic; protojson judges
	}
}

// Every enum of the schemas has distinct short values, so reading one back
// is unambiguous.
func TestShortEnumValuesAreDistinct(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("demarche.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Enums().Len(); i++ {
			e := fd.Enums().Get(i)
			seen := map[string]bool{}
			for _, v := range EnumValues(e) {
				if seen[v] {
					t.Errorf("%s: %q twice", e.FullName(), v)
				}
				seen[v] = true
			}
			n++
		}
		return true
	})
	if n < 10 {
		t.Fatalf("only %d enums seen", n)
	}
}

// Messages of google.protobuf without a JSON form of their own (descriptors)
// follow the style too; those with one (Timestamp, Duration, ...) keep it.
func TestDescriptorsFollowTheStyle(t *testing.T) {
	fd := protodesc.ToFileDescriptorProto(demarchev1.File_demarche_v1_state_proto)
	b, err := Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{fd}})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "TYPE_STRING") || !strings.Contains(s, `"type":"string"`) || !strings.Contains(s, `"label":"repeated"`) {
		t.Fatalf("descriptor set: %.300s", s)
	}
	var back descriptorpb.FileDescriptorSet
	if err := Unmarshal(b, &back); err != nil || !proto.Equal(back.GetFile()[0], fd) {
		t.Fatalf("descriptor set does not read back: %v", err)
	}
}

// The API's style costs a second pass over protojson's output; this is the
// price per answer, beside protojson alone in the same run.
func BenchmarkMarshal(b *testing.B) {
	st := state()
	for range 20 {
		st.Decisions = append(st.Decisions, &demarchev1.DecisionRecord{Number: 1, Kind: "triage", Stage: demarchev1.Stage_STAGE_WARNING,
			Principal: "duty", Rationale: "credible", DecidedAt: timestamppb.Now()})
	}
	b.Run("apijson", func(b *testing.B) {
		for b.Loop() {
			if _, err := Marshal(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	baseline := protojson.MarshalOptions{EmitUnpopulated: true}
	b.Run("protojson-baseline", func(b *testing.B) {
		for b.Loop() {
			if _, err := baseline.Marshal(st); err != nil {
				b.Fatal(err)
			}
		}
	})
}
