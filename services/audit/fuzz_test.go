package audit

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// FuzzRecordDecoding: whatever bytes sit on a chain's subject, the audit
// service's check of a stored record (checkStored) and the auditors'
// decoding (DecodeRecords, then Verify) either accept a record whose hash is
// its own or report a break at that record; they never panic.
func FuzzRecordDecoding(f *testing.F) {
	r := &demarchev1.AuditRecord{Chain: ChainOf("GN-1"), Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT, CrisisId: "GN-1",
		EventId: "GN-1-0001", EventType: "org.demarche.crisis.stage_entered.v1", EventSource: "/demarche/workflows/crisis-response",
		Principal: "duty", RecordedAt: timestamppb.New(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)),
		WorkflowId: "crisis-GN-1", RunId: "run-1", HistoryEventId: 12}
	if err := link(r, nil); err != nil {
		f.Fatal(err)
	}
	good, _ := Encode(r)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("\xff\xffgarbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		chain := ChainOf("GN-1")
		if rec, err := checkStored(chain, 7, b); err == nil {
			h, herr := Hash(rec)
			if herr != nil || !bytes.Equal(h, rec.GetHash()) || rec.GetChain() != chain {
				t.Fatalf("accepted a record that is not its own: %v", rec)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		recs, err := DecodeRecords(chain, [][]byte{good, b})
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Record != 2 {
				t.Fatalf("decoding break not at record 2: %v", err)
			}
			return
		}
		if _, err := Verify(chain, recs, VerifyOptions{}); err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Record != 2 {
				t.Fatalf("verify break not at record 2: %v", err)
			}
		}
	})
}
