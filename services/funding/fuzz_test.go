package funding_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
)

// FuzzDecodeLine: whatever bytes sit on a ledger subject, decoding a line
// either yields a line whose hash is its own, or a *LedgerError that names
// the fund and the stream sequence; it never panics.
func FuzzDecodeLine(f *testing.F) {
	line := &demarchev1.LedgerEntry{Fund: "small-fund", Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_OPENING, AmountUsd: 1000,
		BalanceAfterUsd: 1000, Key: "open-small-fund", At: timestamppb.Now(), Line: 1, PrevHash: make([]byte, 32), OpenedBy: "fuzz",
		CrisisTotalsUsd: map[string]int64{"NE-1": 5}}
	line.Hash, _ = funding.LineHash(line)
	good, _ := proto.Marshal(line)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("\xff\xff garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := funding.DecodeLine("small-fund", 42, b)
		if err != nil {
			var le *funding.LedgerError
			if !errors.As(err, &le) || le.Fund != "small-fund" || le.StreamSequence != 42 || !errors.Is(err, funding.ErrLedgerBroken) {
				t.Fatalf("error without its place: %v", err)
			}
			return
		}
		h, err := funding.LineHash(e)
		if err != nil || !proto.Equal(&demarchev1.LedgerEntry{Hash: h}, &demarchev1.LedgerEntry{Hash: e.GetHash()}) || e.GetSequence() != 42 || e.GetLine() == 0 {
			t.Fatalf("accepted a line that is not its own: %v %v", e, err)
		}
		_ = funding.VerifyLines("small-fund", []*demarchev1.LedgerEntry{e}, nil)
	})
}
