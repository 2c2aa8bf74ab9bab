package audit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

// The committed history of a drill crisis run on the real stack (15 decisions).
const (
	historyFile   = "../../workflows/crisis/testdata/CrisisResponse-drill.json"
	historyCrisis = "GN-20261127-E2E01"
)

func loadHistories(t *testing.T) []History {
	t.Helper()
	h, err := trail.LoadFile(historyFile)
	if err != nil {
		t.Fatal(err)
	}
	return []History{{WorkflowID: "crisis-" + historyCrisis, History: h}}
}

// chainFor builds the audit chain the service would hold for the histories'
// decisions, with a read and a non-decision event in between.
func chainFor(t *testing.T, hs []History, key ed25519.PrivateKey) *demarchev1.AuditChain {
	t.Helper()
	chain := &demarchev1.AuditChain{Chain: ChainOf(historyCrisis)}
	var prev *demarchev1.AuditRecord
	add := func(r *demarchev1.AuditRecord) {
		r.Chain, r.CrisisId, r.RecordedAt = chain.Chain, historyCrisis, timestamppb.New(time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC))
		if err := link(r, prev); err != nil {
			t.Fatal(err)
		}
		chain.Records, prev = append(chain.Records, r), r
	}
	for _, h := range hs {
		ds, err := DecisionsOf(h.WorkflowID, h.History)
		if err != nil {
			t.Fatal(err)
		}
		decisions := map[string]Decision{}
		for _, d := range ds {
			decisions[d.EventID] = d
		}
		run := cmpOr(h.RunID, crisis.RunIDOf(h.History))
		for _, p := range PublicationsOf(h) {
			r := &demarchev1.AuditRecord{Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT, EventId: p.EventID, EventType: p.EventType,
				EventSource: crisis.EventSource, Principal: crisis.EventSource, WorkflowId: p.Workflow, RunId: run, HistoryEventId: p.HistoryEventID}
			if d, ok := decisions[p.EventID]; ok {
				r.Principal, r.DecisionNumber, r.DecisionKind, r.EventTime = d.Principal, d.Number, d.Kind, timestamppb.New(d.Time)
			}
			add(r)
		}
	}
	add(&demarchev1.AuditRecord{Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ, EventId: "read-1", EventType: ReadEventType, Principal: "auditor"})
	chain.Head = HeadOf(prev)
	if err := SignHead(chain.Head, key); err != nil {
		t.Fatal(err)
	}
	return chain
}

func TestReconcile(t *testing.T) {
	hs := loadHistories(t)
	chain := chainFor(t, hs, nil)
	rep, err := Reconcile(hs, chain.Records)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Decisions != 15 || rep.Matched != 15 || rep.Records != 15 {
		t.Fatalf("complete chain: %+v %v", rep, rep.Error())
	}

	// An audit record missing: named by its decision.
	var missing []*demarchev1.AuditRecord
	var eventOf8 string
	for _, r := range chain.Records {
		if r.GetDecisionNumber() != 8 {
			missing = append(missing, r)
		} else {
			eventOf8 = r.GetEventId()
		}
	}
	rep, _ = Reconcile(hs, missing)
	if rep.OK() || len(rep.MissingInAudit) != 1 || rep.MissingInAudit[0].Number != 8 || eventOf8 == "" ||
		!strings.Contains(rep.Error().Error(), "no audit record for decision 8 (funding-decision by drill-approver, event "+eventOf8+",") {
		t.Fatalf("missing record 8 not reported: %+v\n%v", rep, rep.Error())
	}
	t.Log(rep.Error())

	// A record with no decision in the history, and one that says otherwise.
	extra := append([]*demarchev1.AuditRecord(nil), chain.Records...)
	extra = append(extra, &demarchev1.AuditRecord{Chain: chain.Chain, Sequence: 99, Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT,
		EventType: decisionType, EventId: "invented", DecisionNumber: 16, DecisionKind: "closure", Principal: "mallory"})
	first := 0
	for !IsDecision(extra[first]) {
		first++
	}
	changed := proto.Clone(extra[first]).(*demarchev1.AuditRecord)
	changed.Principal = "someone-else"
	extra[first] = changed
	rep, _ = Reconcile(hs, extra)
	if len(rep.MissingInHistory) != 1 || rep.MissingInHistory[0].GetEventId() != "invented" || len(rep.Mismatched) != 1 ||
		!strings.Contains(rep.Error().Error(), "no history entry for audit record 99") || !strings.Contains(rep.Error().Error(), "someone-else") {
		t.Fatalf("extra and changed records not reported: %v", rep.Error())
	}

	// Every event type is covered, not only decisions: a record of a stage
	// event missing, one invented, one from another history event.
	if rep, _ := Reconcile(hs, chain.Records); rep.Events <= rep.Decisions || rep.EventsMatched != rep.Events || rep.EventRecords != rep.Events {
		t.Fatalf("events: %+v", rep)
	}
	var stage *demarchev1.AuditRecord
	var others []*demarchev1.AuditRecord
	for _, r := range chain.Records {
		if stage == nil && r.GetEventType() == "org.demarche.crisis.stage_entered.v1" {
			stage = r
			continue
		}
		others = append(others, r)
	}
	rep, _ = Reconcile(hs, others)
	if rep.OK() || len(rep.MissingEvents) != 1 || !strings.Contains(rep.Error().Error(), "no audit record for event "+stage.GetEventId()+" (org.demarche.crisis.stage_entered.v1") {
		t.Fatalf("missing stage record: %v", rep.Error())
	}
	moved := proto.Clone(stage).(*demarchev1.AuditRecord)
	moved.HistoryEventId++
	invented := proto.Clone(stage).(*demarchev1.AuditRecord)
	invented.EventId = "invented-stage"
	rep, _ = Reconcile(hs, append(others, moved, invented))
	if len(rep.UnknownEvents) != 1 || len(rep.Mismatched) != 1 || !strings.Contains(rep.Error().Error(), "invented-stage") {
		t.Fatalf("moved and invented stage records: %v", rep.Error())
	}
	t.Log(rep.Error())

	// No history at all: every record is unmatched.
	rep, _ = Reconcile(nil, chain.Records)
	if len(rep.MissingInHistory) != 15 {
		t.Fatalf("without histories: %+v", rep)
	}
}

func writeBundle(t *testing.T, key ed25519.PrivateKey) ([]byte, *demarchev1.EvidenceManifest) {
	t.Helper()
	hs := loadHistories(t)
	var buf bytes.Buffer
	m, err := WriteBundle(&buf, BundleInput{CrisisID: historyCrisis, Histories: hs, Chain: chainFor(t, hs, key),
		Figures: FiguresOf(hs), CreatedBy: "auditor", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

// rewrite repacks a bundle with change applied to its files (nil: drop the file).
func rewrite(t *testing.T, bundle []byte, change func(name string, b []byte) []byte, add map[string][]byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	put := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(b)
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if b = change(hdr.Name, b); b != nil {
			put(hdr.Name, b)
		}
	}
	for name, b := range add {
		put(name, b)
	}
	_ = tw.Close()
	_ = gw.Close()
	return out.Bytes()
}

// TestBundleRoundTrip exports a bundle and verifies it offline; any modified,
// removed or added file fails verification, naming the file.
func TestBundleRoundTrip(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	bundle, m := writeBundle(t, key)
	var names []string
	for _, f := range m.GetFiles() {
		names = append(names, f.GetName())
	}
	want := []string{ChainFile, FiguresFile, HistoryDir + "crisis-" + historyCrisis + ".json", TrailFile}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("bundle files %v, want %v", names, want)
	}
	rep, err := VerifyBundle(bytes.NewReader(bundle), pub)
	if err != nil {
		t.Fatalf("untouched bundle: %v", err)
	}
	if rep.CrisisID != historyCrisis || rep.Histories != 1 || rep.Signer != KeyID(pub) || rep.Chain.Records != len(chainFor(t, loadHistories(t), nil).GetRecords()) || !rep.Chain.HeadSigned {
		t.Fatalf("report %+v %+v", rep, rep.Chain)
	}
	files, err := ReadBundle(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	var figures demarchev1.ClosureFigures
	if err := protojson.Unmarshal(files[FiguresFile], &figures); err != nil || figures.GetDecisions() != 15 ||
		!strings.Contains(string(files[TrailFile]), `"principal": "drill-approver`) {
		t.Fatalf("trail or figures missing:\n%s\n%s", files[TrailFile], files[FiguresFile])
	}
	// The history in the bundle is the standard JSON the Temporal tooling reads.
	if h, err := trail.LoadJSON(bytes.NewReader(files[HistoryDir+"crisis-"+historyCrisis+".json"])); err != nil || len(h.GetEvents()) == 0 {
		t.Fatalf("history in the bundle: %v", err)
	}

	flip := func(target string) func(string, []byte) []byte {
		return func(name string, b []byte) []byte {
			if name == target {
				b = append([]byte(nil), b...)
				i := bytes.Index(b, []byte("drill"))
				if i < 0 {
					i = len(b) / 2
				}
				b[i] ^= 0x20 // "drill" -> "Drill"
			}
			return b
		}
	}
	cases := []struct {
		name, file string
		bundle     []byte
		key        ed25519.PublicKey
	}{
		{"modified history", HistoryDir + "crisis-" + historyCrisis + ".json", rewrite(t, bundle, flip(HistoryDir+"crisis-"+historyCrisis+".json"), nil), nil},
		{"modified trail", TrailFile, rewrite(t, bundle, flip(TrailFile), nil), nil},
		{"modified chain", ChainFile, rewrite(t, bundle, flip(ChainFile), nil), nil},
		{"modified figures", FiguresFile, rewrite(t, bundle, flip(FiguresFile), nil), nil},
		{"modified manifest", ManifestFile, rewrite(t, bundle, flip(ManifestFile), nil), nil},
		{"removed file", TrailFile, rewrite(t, bundle, func(n string, b []byte) []byte {
			if n == TrailFile {
				return nil
			}
			return b
		}, nil), nil},
		{"added file", "notes.txt", rewrite(t, bundle, func(_ string, b []byte) []byte { return b }, map[string][]byte{"notes.txt": []byte("hi")}), nil},
		{"removed signature", SignatureFile, rewrite(t, bundle, func(n string, b []byte) []byte {
			if n == SignatureFile {
				return nil
			}
			return b
		}, nil), nil},
		{"another signer", SignatureFile, bundle, func() ed25519.PublicKey { p, _, _ := ed25519.GenerateKey(nil); return p }()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyBundle(bytes.NewReader(tc.bundle), tc.key)
			var be *BundleError
			if !errors.As(err, &be) || !errors.Is(err, ErrBundle) || be.File != tc.file {
				t.Fatalf("want a failure naming %s, got %v", tc.file, err)
			}
			t.Log(err)
		})
	}

	// A consistent but rewritten bundle (files and manifest re-hashed, no
	// signature) fails on the chain inside: its records no longer link.
	unsigned, _ := writeBundle(t, nil)
	if _, err := VerifyBundle(bytes.NewReader(unsigned), nil); err != nil {
		t.Fatalf("unsigned bundle: %v", err)
	}
	hs := loadHistories(t)
	chain := chainFor(t, hs, nil)
	chain.Records[3].Principal = "mallory"
	var buf bytes.Buffer
	if _, err := WriteBundle(&buf, BundleInput{CrisisID: historyCrisis, Histories: hs, Chain: chain}); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyBundle(bytes.NewReader(buf.Bytes()), nil)
	var be *BundleError
	if !errors.As(err, &be) || be.File != ChainFile || !strings.Contains(err.Error(), "record 4") {
		t.Fatalf("rewritten chain in a re-hashed bundle: %v", err)
	}
}
