package funding_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Stopped while disbursements are in flight, funding answers what it took or
// leaves it unanswered; nothing it acknowledged is missing from the ledger
// after a restart, and what it did not acknowledge is paid exactly once
// when retried under its key.
func TestStopMidRequestLosesNothingAcknowledged(t *testing.T) {
	big := &demarchev1.Fund{Id: "big-fund", Name: "Big fund", OpeningBalanceUsd: 1_000_000, PerCrisisCeilingUsd: 10_000}
	srv := natstest.ServerIn(t, t.TempDir())
	openFunds(t, srv.URL(), big)
	svc, err := serve(srv.URL(), big)
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := natstest.Connect(t, srv.URL())
	const n = 40
	call := func(i int) *demarchev1.DisburseCall {
		return disburseCall(fmt.Sprintf("C%02d-crisis", i), "FR-1", fmt.Sprintf("C%02d-FR-1", i), false)
	}
	for i := range n {
		approved(t, nc, call(i).GetCrisisId(), "FR-1", "big-fund", 100)
	}

	acked := make([]uint64, n) // ledger sequence of each acknowledged disbursement
	var wg sync.WaitGroup
	var first sync.Once
	answered := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var res demarchev1.DisburseResult
			if err := natsrpc.Call(ctx, nc, natsrpc.FundingDisburse, call(i), &res); err == nil {
				acked[i] = res.GetEntry().GetSequence()
				first.Do(func() { close(answered) })
			}
		}()
	}
	<-answered // some are answered, others still in flight
	svc.Stop()
	wg.Wait()

	svc2, err := serve(srv.URL(), big)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc2.Stop)
	inLedger := map[string]uint64{}
	for _, e := range checkLedgerBalances(t, nc, "big-fund", 1_000_000)[1:] {
		inLedger[e.GetKey()] = e.GetSequence()
	}
	ackedCount := 0
	for i, seq := range acked {
		if seq == 0 {
			continue
		}
		ackedCount++
		if inLedger[call(i).GetKey()] != seq {
			t.Errorf("disbursement %s was acknowledged at line %d before the stop; the ledger has %d", call(i).GetKey(), seq, inLedger[call(i).GetKey()])
		}
	}
	for i := range n { // the sender retries what was not acknowledged
		if acked[i] != 0 {
			continue
		}
		if err := natsrpc.Call(context.Background(), nc, natsrpc.FundingDisburse, call(i), &demarchev1.DisburseResult{}); err != nil {
			t.Fatalf("retry %s: %v", call(i).GetKey(), err)
		}
	}
	if lines := checkLedgerBalances(t, nc, "big-fund", 1_000_000); len(lines) != n+1 { // checkLedgerBalances refuses a key paid twice
		t.Fatalf("%d ledger lines after the retries, want %d (the opening and each disbursement once)", len(lines), n+1)
	}
	t.Logf("%d of %d disbursements acknowledged before the stop; the rest retried and paid once", ackedCount, n)
}
