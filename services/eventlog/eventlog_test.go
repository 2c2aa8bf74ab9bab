package eventlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// A confidential crisis's title never reaches the log; the line still says
// which event of which crisis went by.
func TestLogLinesCarryNoEventData(t *testing.T) {
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv.URL())
	core, logs := observer.New(zapcore.InfoLevel)
	svc, err := Start(context.Background(), srv.URL(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	now := time.Now()
	c := &demarchev1.Crisis{Id: "GN-20261128-QUIET", Title: "Secret talks with the junta", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_CONFIDENTIAL, OpenedAt: timestamppb.New(now)}
	pub := eventbus.NewPublisher(js, "/test")
	if _, err := pub.Publish(context.Background(), eventbus.Route{Region: c.GetRegion(), Country: "GN", CrisisID: c.GetId()},
		eventbus.Event{ID: "ev-1", Source: "/test", Subject: c.GetId(), Time: now, Data: &demarchev1.CrisisOpened{Crisis: c}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for logs.FilterMessage("event").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	lines := logs.FilterMessage("event").All()
	if len(lines) != 1 || lines[0].ContextMap()["crisis"] != c.GetId() {
		t.Fatalf("log lines: %v", lines)
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "Secret talks") {
				t.Fatalf("the confidential title reached the log in %s: %v", k, e)
			}
		}
	}
}
