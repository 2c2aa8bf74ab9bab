package funding_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/demarche/demarche/pkg/metrics"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/funding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestBrokenLedgerIsAnAlarmWithoutARead: a line nobody but the funding
// service should have written (well encoded, its own hash right, but not
// linked to the line before) raises the alarm by itself, within moments,
// though nobody reads the fund: the ALARM is counted on the served registry
// (demarche_funding_ledger_alarms_total{alarm="broken"}) once, however many
// reads fail after it.
func TestBrokenLedgerIsAnAlarmWithoutARead(t *testing.T) {
	_, svc, nc := start(t, t.TempDir(), smallFund, otherFund)
	broken := metrics.FundingLedgerAlarms.WithLabelValues("broken")
	before := testutil.ToFloat64(broken)
	reported := make(chan *demarchev1.AuditAlarm, 8)
	if _, err := nc.Subscribe(funding.AlarmSubject, func(m *nats.Msg) {
		var a demarchev1.AuditAlarm
		if proto.Unmarshal(m.Data, &a) == nil {
			reported <- &a
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	forge(t, nc, "small-fund", &demarchev1.LedgerEntry{Fund: "small-fund", Line: 2, Kind: demarchev1.LedgerEntryKind_LEDGER_ENTRY_KIND_DISBURSEMENT,
		AmountUsd: 1, BalanceAfterUsd: 999, CrisisId: "XX-1", CrisisTotalsUsd: map[string]int64{"XX-1": 1}, Key: "forged", At: timestamppb.Now(),
		PrevHash: make([]byte, 32)})
	deadline := time.Now().Add(30 * time.Second)
	for svc.Store.Alarms()["small-fund"] == "" {
		if time.Now().After(deadline) {
			t.Fatal("no alarm for a forged ledger line within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if why := svc.Store.Alarms()["small-fund"]; !strings.Contains(why, "line 2") {
		t.Fatalf("alarm reason %q does not name the line", why)
	}
	if got := testutil.ToFloat64(broken) - before; got != 1 {
		t.Fatalf("demarche_funding_ledger_alarms_total{alarm=broken} rose by %v, want 1", got)
	}
	select { // where every alarm is watched (the audit service records it)
	case a := <-reported:
		if a.GetKind() != funding.LedgerAlarmKind || a.GetEventId() != "ledger-small-fund" || !strings.Contains(a.GetReason(), "line 2") {
			t.Fatalf("reported alarm %v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alarm published on " + funding.AlarmSubject)
	}
	for range 3 { // every read fails the same way: no new alarm
		if _, err := ledgerOf(t, nc, "small-fund"); err == nil {
			t.Fatal("a broken ledger was served")
		}
	}
	if got := testutil.ToFloat64(broken) - before; got != 1 {
		t.Fatalf("after three failing reads the alarm counter rose by %v, want 1 (once per break)", got)
	}
	// Nothing of ours hides on Prometheus's default registry (never served).
	if mfs, err := prometheus.DefaultGatherer.Gather(); err == nil {
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "demarche_") {
				t.Errorf("%s is on the default registry, which /metrics does not serve", mf.GetName())
			}
		}
	}
	if _, ok := svc.Store.Alarms()["other-fund"]; ok {
		t.Fatal("the other fund was alarmed")
	}
}
