package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

const crisisA = "GN-20261127-AUD01"

// encodeAll is the stored form of each record.
func encodeAll(t *testing.T, recs []*demarchev1.AuditRecord) [][]byte {
	t.Helper()
	out := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func expectBreak(t *testing.T, name string, raw [][]byte, head *demarchev1.ChainHead, record int, field string) {
	t.Helper()
	chain := ChainOf(crisisA)
	recs, err := DecodeRecords(chain, raw)
	if err == nil {
		_, err = Verify(chain, recs, VerifyOptions{Head: head})
	}
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrBroken) {
		t.Fatalf("%s: want a chain break at record %d, got %v", name, record, err)
	}
	if ve.Record != record || ve.Field != field {
		t.Fatalf("%s: break reported at record %d (%s), want record %d (%s): %v", name, ve.Record, ve.Field, record, field, err)
	}
	t.Logf("%s: %v", name, err)
}

// TestTamperDetection builds a real chain through the service, then modifies,
// deletes, inserts and reorders records: Verify fails each time at the record
// where the chain breaks; the untouched chain verifies, with its signed head.
func TestTamperDetection(t *testing.T) {
	e := newEnv(t)
	_, key, _ := ed25519.GenerateKey(nil)
	svc := e.start(key)
	defer svc.Stop()
	const n = 8
	for i := 1; i <= n; i++ {
		e.publish(crisisA, i)
	}
	waitChain(t, svc.Store, ChainOf(crisisA), n)
	got, err := FetchChain(context.Background(), e.nc, crisisA, "auditor")
	if err != nil {
		t.Fatal(err)
	}
	recs, head := got.GetRecords(), got.GetHead()
	if len(recs) != n+1 { // 8 events and this read
		t.Fatalf("chain holds %d records, want %d", len(recs), n+1)
	}
	res, err := Verify(ChainOf(crisisA), recs, VerifyOptions{Head: head, TrustedKey: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatalf("untouched chain: %v", err)
	}
	if res.Records != n+1 || !res.HeadSigned {
		t.Fatalf("result %+v", res)
	}
	raw := encodeAll(t, recs)
	clone := func() [][]byte {
		out := make([][]byte, len(raw))
		for i, b := range raw {
			out[i] = append([]byte(nil), b...)
		}
		return out
	}

	// Modification: one byte of record 4's event id; one byte of record 6's stored hash.
	mod := clone()
	i := bytes.Index(mod[3], []byte(recs[3].GetEventId()))
	mod[3][i+len(recs[3].GetEventId())-1] ^= 0x01
	expectBreak(t, "flip a byte of record 4", mod, head, 4, "hash")
	mod = clone()
	i = bytes.Index(mod[5], recs[5].GetHash())
	mod[5][i] ^= 0x80
	expectBreak(t, "flip a byte of record 6's hash", mod, head, 6, "hash")
	mod = clone()
	i = bytes.Index(mod[6], recs[6].GetPrevHash())
	mod[6][i+3] ^= 0x01
	expectBreak(t, "flip a byte of record 7's link", mod, head, 7, "prev_hash")

	// Deletion of record 5.
	del := append(clone()[:4], clone()[5:]...)
	expectBreak(t, "delete record 5", del, head, 5, "sequence")

	// Insertion at position 3: a copy of record 7; then a forgery linked to record 2.
	ins := clone()
	ins = append(ins[:2], append([][]byte{raw[6]}, ins[2:]...)...)
	expectBreak(t, "insert a copy of record 7 at 3", ins, head, 3, "sequence")
	forged := proto.Clone(recs[2]).(*demarchev1.AuditRecord)
	forged.EventId, forged.Principal = "forged-event", "mallory"
	if err := link(forged, recs[1]); err != nil {
		t.Fatal(err)
	}
	fb, _ := Encode(forged)
	ins = clone()
	ins = append(ins[:2], append([][]byte{fb}, ins[2:]...)...)
	// Perfectly linked, but not signed by the audit service's key: caught at
	// the forged record itself.
	expectBreak(t, "insert a forged record at 3", ins, head, 3, "signature")
	forged.Signature = nil
	fb, _ = Encode(forged)
	ins = clone()
	ins = append(ins[:2], append([][]byte{fb}, ins[2:]...)...)
	expectBreak(t, "insert an unsigned forged record at 3", ins, head, 3, "signature")

	// Reordering: swap records 3 and 6.
	sw := clone()
	sw[2], sw[5] = sw[5], sw[2]
	expectBreak(t, "swap records 3 and 6", sw, head, 3, "sequence")

	// Truncation shows against the head; a rewritten chain against its signature.
	expectBreak(t, "drop the last record", clone()[:n], head, n+1, "head")
	badHead := proto.Clone(head).(*demarchev1.ChainHead)
	badHead.Hash = recs[n-1].GetHash()
	badHead.Sequence = n
	if _, err := Verify(ChainOf(crisisA), recs[:n], VerifyOptions{Head: badHead}); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("a head moved back without its signature verified: %v", err)
	}
}

// TestCatchUpAfterDowntime stops the service during a crisis and starts it
// again: the chain is complete, in stream order, nothing duplicated.
func TestCatchUpAfterDowntime(t *testing.T) {
	e := newEnv(t)
	svc := e.start(nil)
	var want []string
	for i := 1; i <= 3; i++ {
		want = append(want, e.publish(crisisA, i))
	}
	waitChain(t, svc.Store, ChainOf(crisisA), 3)
	svc.Stop()

	const other = "ML-20261127-AUD02"
	for i := 4; i <= 9; i++ {
		want = append(want, e.publish(crisisA, i))
		e.publish(other, i)
	}
	// A republished event (same id) is stored once by the bus; the audit
	// never sees it twice.
	e.publish(crisisA, 5)

	svc = e.start(nil)
	defer svc.Stop()
	waitChain(t, svc.Store, ChainOf(crisisA), len(want))
	waitChain(t, svc.Store, GlobalChain, len(want)+6)
	time.Sleep(300 * time.Millisecond) // anything extra would have arrived by now
	recs, _ := svc.Store.Records(context.Background(), ChainOf(crisisA), 0, 0)
	global, _ := svc.Store.Records(context.Background(), GlobalChain, 0, 0)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.GetEventId())
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("crisis chain after restart\n got %v\nwant %v", ids, want)
	}
	if len(global) != len(want)+6 {
		t.Fatalf("global chain holds %d records, want %d", len(global), len(want)+6)
	}
	for _, c := range [][]*demarchev1.AuditRecord{recs, global} {
		if _, err := Verify("", c, VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The record of a decision carries its principal and number.
	if r := recs[2]; r.GetPrincipal() != "officer-3" || r.GetDecisionNumber() != 1 || r.GetDecisionKind() != "good-offices" || len(r.GetEventDigest()) != 32 {
		t.Fatalf("decision record %v", r)
	}

	// Appending an event again, even after other records went in (a redelivery
	// after a crash between the two chains), stores nothing twice.
	if err := svc.Store.AppendRead(context.Background(), "someone", crisisA, "test"); err != nil {
		t.Fatal(err)
	}
	r, err := svc.Store.RecordOf(testEvent(crisisA, 6))
	if err != nil {
		t.Fatal(err)
	}
	r.Chain = ChainOf(crisisA)
	if _, dup, err := svc.Store.append(context.Background(), r); err != nil || !dup {
		t.Fatalf("append again: dup=%v err=%v", dup, err)
	}
	if after, _ := svc.Store.Records(context.Background(), ChainOf(crisisA), 0, 0); len(after) != len(want)+1 {
		t.Fatalf("chain holds %d records after a repeated append, want %d", len(after), len(want)+1)
	}
	// Pages read the same chain.
	var paged []*demarchev1.AuditRecord
	for {
		p, err := svc.Store.Records(context.Background(), GlobalChain, uint64(len(paged)), 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) == 0 {
			break
		}
		paged = append(paged, p...)
	}
	if len(paged) < len(global) || !proto.Equal(paged[len(global)-1], global[len(global)-1]) {
		t.Fatalf("paged read: %d records", len(paged))
	}
}

// TestReadsAreAudited: every read appends an audit-read record naming the reader.
func TestReadsAreAudited(t *testing.T) {
	e := newEnv(t)
	svc := e.start(nil)
	defer svc.Stop()
	for i := 1; i <= 2; i++ {
		e.publish(crisisA, i)
	}
	waitChain(t, svc.Store, ChainOf(crisisA), 2)
	ctx := context.Background()
	got, err := FetchChain(ctx, e.nc, crisisA, "auditor-alice")
	if err != nil {
		t.Fatal(err)
	}
	last := got.GetRecords()[len(got.GetRecords())-1]
	if last.GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ || last.GetEventType() != ReadEventType ||
		last.GetPrincipal() != "auditor-alice" || last.GetCrisisId() != crisisA || !strings.Contains(last.GetDetail(), ChainOf(crisisA)) {
		t.Fatalf("last record of the crisis chain is not alice's read: %v", last)
	}
	if _, err := FetchHeads(ctx, e.nc, crisisA, "auditor-bob"); err != nil {
		t.Fatal(err)
	}
	global, err := svc.Store.Records(ctx, GlobalChain, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var readers []string
	for _, r := range global {
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ {
			readers = append(readers, r.GetPrincipal()+":"+r.GetCrisisId())
		}
	}
	if fmt.Sprint(readers) != fmt.Sprint([]string{"auditor-alice:" + crisisA, "auditor-bob:" + crisisA}) {
		t.Fatalf("reads in the global chain: %v", readers)
	}
	if _, err := Verify(GlobalChain, global, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	// A read without a reader is refused, naming the field.
	var resp demarchev1.AuditChain
	err = natsrpc.Call(ctx, e.nc, SubjectChain, &demarchev1.AuditChainRequest{CrisisId: crisisA}, &resp)
	if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "reader") {
		t.Fatalf("read without a reader: %v", err)
	}
	// A crisis without a chain: not found, and the attempt is still recorded.
	err = natsrpc.Call(ctx, e.nc, SubjectChain, &demarchev1.AuditChainRequest{CrisisId: "XX-NONE", Reader: "carol"}, &resp)
	if !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("unknown crisis: %v", err)
	}
	head, _ := svc.Store.Head(ctx, GlobalChain)
	lastGlobal, _ := svc.Store.Records(ctx, GlobalChain, head.GetSequence()-1, 1)
	if lastGlobal[0].GetPrincipal() != "carol" {
		t.Fatalf("the failed read was not recorded: %v", lastGlobal[0])
	}
}

// TestMicroDiscovery: the audit service answers NATS micro discovery.
func TestMicroDiscovery(t *testing.T) {
	e := newEnv(t)
	svc := e.start(nil)
	defer svc.Stop()
	msg, err := e.nc.Request("$SRV.INFO."+ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Subject string `json:"subject"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, ep := range info.Endpoints {
		subjects = append(subjects, ep.Subject)
	}
	if info.Name != ServiceName || fmt.Sprint(subjects) != fmt.Sprint([]string{SubjectChain, SubjectHeads, SubjectRead, SubjectOperation, natsrpc.AuditFundOpened, natsrpc.AuditRulesChanged, natsrpc.AuditFundContribution, natsrpc.AuditWarningDialogue}) {
		t.Fatalf("$SRV.INFO.audit: %s", msg.Data)
	}
	if _, err := e.nc.Request("$SRV.PING."+ServiceName, nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
