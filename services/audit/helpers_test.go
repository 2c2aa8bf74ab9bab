package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

type env struct {
	t   *testing.T
	srv *natsembed.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *eventbus.Publisher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := natstest.NewBus(t)
	return &env{t: t, srv: b.Server, nc: b.NC, js: b.JS, pub: eventbus.NewPublisher(b.JS, crisis.EventSource)}
}

func (e *env) start(key ed25519.PrivateKey) *Service {
	e.t.Helper()
	s, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), SigningKey: key}, zap.NewNop())
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func route(crisisID string) eventbus.Route {
	return eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: crisisID}
}

// publish puts the n-th test event of a crisis on the bus: a decision every
// third event, stage entries otherwise.
func (e *env) publish(crisisID string, n int) string {
	e.t.Helper()
	ev := testEvent(crisisID, n)
	if _, err := e.pub.Publish(context.Background(), route(crisisID), ev); err != nil {
		e.t.Fatalf("publish %s: %v", ev.ID, err)
	}
	return ev.ID
}

// testEvent is the n-th test event of a crisis.
func testEvent(crisisID string, n int) eventbus.Event {
	id := fmt.Sprintf("%s-%04d", crisisID, n)
	at := time.Date(2026, 11, 27, 9, 0, n, 0, time.UTC)
	var data = eventbus.Event{ID: id, Source: crisis.EventSource, Subject: crisisID, Time: at,
		Origin: eventbus.Origin{WorkflowID: crisis.WorkflowID(crisisID), RunID: "run-1", HistoryEventID: int64(10 + n)}}
	if n%3 == 0 {
		data.Data = &demarchev1.DecisionRecorded{CrisisId: crisisID, Decision: &demarchev1.DecisionRecord{
			Number: int32(n / 3), Kind: "good-offices", Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, Principal: fmt.Sprintf("officer-%d", n),
			Rationale: "test", DecidedAt: timestamppb.New(at),
			Request: &demarchev1.DecisionRequest{Principal: fmt.Sprintf("officer-%d", n), Rationale: "test",
				Decision: &demarchev1.DecisionRequest_GoodOffices{GoodOffices: &demarchev1.GoodOfficesDecision{Option: demarchev1.GoodOfficesOption_GOOD_OFFICES_OPTION_QUIET_DIPLOMACY}}},
		}}
	} else {
		data.Data = &demarchev1.StageEntered{CrisisId: crisisID, Stage: demarchev1.Stage_STAGE_GOOD_OFFICES, EnteredAt: timestamppb.New(at)}
	}
	return data
}

// waitChain waits until a chain holds at least n records and returns them.
func waitChain(t *testing.T, st *Store, chain string, n int) []*demarchev1.AuditRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs, err := st.Records(context.Background(), chain, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("chain %s holds %d records after 20s, want %d", chain, len(recs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
