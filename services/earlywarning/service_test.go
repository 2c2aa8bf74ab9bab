package earlywarning_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

const coup = demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE

// TestACLEDFileThroughTheService imports the ACLED test file through the
// micro endpoint: exact counts, and importing it again finds only duplicates.
func TestACLEDFileThroughTheService(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	startService(t, srv.URL(), earlywarning.Config{Now: time.Now}, opener)
	nc, _ := natstest.Connect(t, srv.URL())
	ingest := earlywarning.IngestOver(nc)
	ctx := context.Background()

	// Through the endpoint a file's signals are the importing person's.
	as := earlywarning.ImportOptions{Batch: 3, Source: demarchev1.PersonSource("analyst")}
	sum, err := earlywarning.ImportWith(ctx, strings.NewReader(acledFile()), earlywarning.FormatACLED, ingest, as)
	if err != nil {
		t.Fatal(err)
	}
	// 11 rows: 5 new, GIN1001 twice (line 9 is the duplicate), 5 refused by the parser.
	if sum.Read != 11 || sum.Accepted != 5 || sum.Duplicates != 1 || len(sum.Rejected) != 5 {
		t.Fatalf("first import: read %d accepted %d duplicates %d rejected %v", sum.Read, sum.Accepted, sum.Duplicates, sum.Rejected)
	}
	as.Batch = 500
	again, err := earlywarning.ImportWith(ctx, strings.NewReader(acledFile()), earlywarning.FormatACLED, ingest, as)
	if err != nil {
		t.Fatal(err)
	}
	if again.Accepted != 0 || again.Duplicates != 6 || len(again.Rejected) != 5 {
		t.Fatalf("second import: accepted %d duplicates %d rejected %d, want 0, 6, 5", again.Accepted, again.Duplicates, len(again.Rejected))
	}
	// Default threshold 25: six small events stay below it.
	if calls, _ := opener.snapshot(); len(calls) != 0 {
		t.Fatalf("opener called %d times below the threshold", len(calls))
	}
}

// TestBurstCrossingOpensOneCrisis: a seed signal, then 40 signals of one
// situation at once from 40 goroutines, half over the bus, half through the
// ingest endpoint. Threshold 10 at weight 1: the 10th signal crosses.
func TestBurstCrossingOpensOneCrisis(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{
		Thresholds: map[demarchev1.Region]float64{demarchev1.Region_REGION_AFRICA: 10},
		Workers:    8,
	}, opener)
	nc, js := natstest.Connect(t, srv.URL())
	ingest := earlywarning.IngestOver(nc)
	ctx := context.Background()

	seed := signal("ecowarn", "seed", "GN", coup, 1, t0)
	if resp, err := svc.Ingest(ctx, []*demarchev1.Signal{seed}); err != nil || resp.GetAccepted() != 1 {
		t.Fatalf("seed: %v %v", resp, err)
	}
	const burst = 40
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := signal("ecowarn", fmt.Sprintf("b-%02d", i), "GN", coup, 1, t0.Add(time.Duration(i+1)*time.Hour))
			if i%2 == 1 {
				sig.Source = demarchev1.PersonSource("duty") // by request: a person's
			}
			if i%2 == 0 {
				errs <- earlywarning.PublishSignal(ctx, js, "/partners/ecowarn", sig)
				return
			}
			resp, err := ingest(ctx, []*demarchev1.Signal{sig})
			if err == nil && resp.GetAccepted() != 1 {
				err = fmt.Errorf("signal %s: %v", sig.GetSourceId(), resp.GetResults())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var score *demarchev1.ScoreResponse
	eventually(t, "all 41 signals scored", func() bool {
		var err error
		var resp demarchev1.ScoreResponse
		err = natsrpc.Call(ctx, nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: "GN", CrisisType: coup}, &resp, natsrpc.Protobuf())
		score = &resp
		return err == nil && len(score.GetContributions()) == burst+1
	})

	calls, opened := opener.snapshot()
	if len(opened) != 1 {
		t.Fatalf("crises opened: %v, want exactly one", opened)
	}
	var id string
	for k := range opened {
		id = k
	}
	if !strings.HasPrefix(id, "GN-20230213-") || len(id) != len("GN-20230213-K7Q3P") {
		t.Fatalf("crisis id %q is not in the normal style GN-<date>-<5 characters>", id)
	}
	// One call for the crossing (the 10th signal); each later signal is attached
	// once, alone or with others taken from the stream in the same batch.
	crossingCalls, attached := 0, 0
	for _, c := range calls {
		if strings.HasPrefix(c.w.GetSummary(), "Threshold crossed") {
			crossingCalls++
			continue
		}
		more := 0
		if i := strings.Index(c.w.GetSummary(), "(and "); i >= 0 {
			_, _ = fmt.Sscanf(c.w.GetSummary()[i:], "(and %d more", &more)
		}
		attached += 1 + more
	}
	if crossingCalls != 1 || attached != burst+1-10 {
		t.Errorf("%d crossing calls and %d signals attached in %d calls, want 1 and %d", crossingCalls, attached, len(calls), burst+1-10)
	}
	for i, c := range calls {
		cr := c.in.GetCrisis()
		if cr.GetId() != id {
			t.Errorf("call %d for crisis %s", i, cr.GetId())
		}
		if !cr.GetFirstSignalAt().AsTime().Equal(t0) {
			t.Errorf("call %d: first_signal_at %s, want the seed's %s", i, cr.GetFirstSignalAt().AsTime(), t0)
		}
	}
	if got := opened[id].GetCrisis(); got.GetFirstSignalAt().AsTime() != t0 || got.GetSeverity() != 3 || got.GetCrisisType() != coup {
		t.Errorf("opened crisis %v", got)
	}
	if !score.GetAboveThreshold() || score.GetCrossings() != 1 || score.GetScore() != burst+1 || score.GetThreshold() != 10 ||
		score.GetCrisisId() != id || score.GetEpisodes() != 1 || score.GetRulesVersion() != earlywarning.DefaultRules().Version {
		t.Errorf("score %v", score)
	}

	// Exactly one WarningRaised on the crisis stream, naming the 10 signals that raised it.
	stream, err := js.Stream(ctx, eventbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	subject := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: id}.Subject("warning_raised")
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subject]; n != 1 {
		t.Fatalf("%d WarningRaised events on %s, want 1", n, subject)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := eventbus.Decode(msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	raised := ev.Data.(*demarchev1.WarningRaised)
	if len(raised.GetContributions()) != 10 || raised.GetScore() != 10 || !raised.GetFirstSignalAt().AsTime().Equal(t0) ||
		raised.GetCrisisId() != id || raised.GetRulesVersion() == "" {
		t.Errorf("WarningRaised %v", raised)
	}
}

func TestBelowThresholdNeverCallsTheOpenerAndScoreExplains(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 30}, opener)
	ctx := context.Background()

	var sigs []*demarchev1.Signal
	for i, deaths := range []int32{0, 3, 50, 7} {
		s := signal("acled", fmt.Sprintf("MLI%d", i), "ML", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, earlywarning.Weight(deaths), t0.Add(time.Duration(i)*24*time.Hour))
		s.Fatalities = deaths
		sigs = append(sigs, s)
	}
	// Another signal of the situation, in the same batch, 30 days older: the
	// batch is applied in event time, so it is scored first, in its own
	// window, and has left the window once the newer signals moved it on.
	old := signal("acled", "MLI-old", "ML", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE, 9, t0.Add(-30*24*time.Hour))
	resp, err := svc.Ingest(ctx, append(sigs, old, signal("acled", "bad", "XX", coup, 1, t0)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAccepted() != 5 || resp.GetRejected() != 1 {
		t.Fatalf("ingest: %v", resp)
	}
	if r := resp.GetResults()[4]; r.GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_ACCEPTED || !r.GetHistorical() || r.GetReason() == "older than the window: recorded, does not count" {
		t.Errorf("old signal: %v", r)
	}
	if r := resp.GetResults()[5]; r.GetRetryable() || !strings.Contains(r.GetReason(), `country_code: "XX" is not an ISO 3166-1 alpha-2`) {
		t.Errorf("invalid signal: %v", r)
	}
	score, err := svc.Score(ctx, "ML", demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE)
	if err != nil {
		t.Fatal(err)
	}
	// Heaviest first: 50 deaths, 7, 3, 0.
	wantOrder := []string{"MLI2", "MLI3", "MLI1", "MLI0"}
	var total float64
	if len(score.GetContributions()) != 4 {
		t.Fatalf("contributions %v", score.GetContributions())
	}
	for i, c := range score.GetContributions() {
		if c.GetSourceId() != wantOrder[i] {
			t.Errorf("contribution %d is %s, want %s", i, c.GetSourceId(), wantOrder[i])
		}
		total += c.GetWeight()
	}
	if w := score.GetContributions()[0].GetWeight(); math.Abs(w-(1+math.Log(51))) > 1e-9 {
		t.Errorf("weight of 50 deaths = %g", w)
	}
	// The old signal's point is at its own time, first: the history is in event time.
	if h := score.GetHistory(); len(h) != 5 || !h[0].GetAt().AsTime().Equal(t0.Add(-30*24*time.Hour)) || h[0].GetScore() != 9 {
		t.Errorf("history: %v", h)
	}
	if math.Abs(score.GetScore()-total) > 1e-9 || score.GetScore() >= 30 || score.GetAboveThreshold() || score.GetThreshold() != 30 {
		t.Errorf("score %g (sum %g) threshold %g above %v", score.GetScore(), total, score.GetThreshold(), score.GetAboveThreshold())
	}
	if calls, _ := opener.snapshot(); len(calls) != 0 {
		t.Fatalf("opener called %d times below the threshold", len(calls))
	}
	if _, err := svc.Score(ctx, "ML", coup); !errors.Is(err, earlywarning.ErrNoSituation) {
		t.Errorf("score of an empty situation: %v", err)
	}
}

// TestWindowMovesAndAttaches: after crossing, a signal in a later batch is
// attached; when the window moves past the old signals the situation falls
// below, and the next crossing raises again: the crisis is still open, so
// the same episode.
func TestWindowMovesAndAttaches(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 5, Window: 7 * 24 * time.Hour, Horizon: 30 * 24 * time.Hour}, opener)
	ctx := context.Background()
	ingest := func(id string, w float64, at time.Time) *demarchev1.IngestResult {
		t.Helper()
		resp, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("ecowarn", id, "UA", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, w, at)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetResults()[0]
	}
	ingest("a", 3, t0)
	r := ingest("b", 3, t0.Add(24*time.Hour))
	id := r.GetCrisisId()
	if id == "" || !r.GetCrisisOpened() {
		t.Fatalf("crossing: %v", r)
	}
	if r := ingest("c", 1, t0.Add(48*time.Hour)); r.GetCrisisId() != id || r.GetCrisisOpened() {
		t.Fatalf("attach: %v", r)
	}
	if calls, _ := opener.snapshot(); len(calls) != 2 || calls[1].w.GetSourceId() != "c" {
		t.Fatalf("calls %v", calls)
	}
	// 10 days later: a, b, c leave the window; 1 < 5.
	if r := ingest("d", 1, t0.Add(10*24*time.Hour)); r.GetCrisisId() != "" {
		t.Fatalf("below again: %v", r)
	}
	if r := ingest("e", 4, t0.Add(11*24*time.Hour)); r.GetCrisisId() != id || r.GetCrisisOpened() {
		t.Fatalf("second crossing: %v", r)
	}
	calls, opened := opener.snapshot()
	if len(calls) != 3 || len(opened) != 1 {
		t.Fatalf("%d calls, %d crises", len(calls), len(opened))
	}
	if got := calls[2].in.GetCrisis().GetFirstSignalAt().AsTime(); !got.Equal(t0.Add(10 * 24 * time.Hour)) {
		t.Errorf("second crossing's first signal %s, want d's", got)
	}
	score, err := svc.Score(ctx, "UA", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE)
	if err != nil || score.GetCrossings() != 2 || score.GetScore() != 5 {
		t.Fatalf("score %v %v", score, err)
	}
}

func TestOpenerFailureIsRetryable(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	opener.fail = errors.New("temporal down")
	svc := startService(t, srv.URL(), earlywarning.Config{DefaultThreshold: 2}, opener)
	ctx := context.Background()
	batch := []*demarchev1.Signal{signal("ecowarn", "x1", "GN", coup, 1, t0), signal("ecowarn", "x2", "GN", coup, 1, t0.Add(time.Hour))}
	resp, err := svc.Ingest(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRejected() != 2 || !resp.GetResults()[1].GetRetryable() {
		t.Fatalf("with the opener down: %v", resp)
	}
	opener.mu.Lock()
	opener.fail = nil
	opener.mu.Unlock()
	resp, err = svc.Ingest(ctx, batch)
	if err != nil || resp.GetAccepted() != 2 {
		t.Fatalf("retry: %v %v", resp, err)
	}
	if calls, _ := opener.snapshot(); len(calls) != 1 {
		t.Fatalf("%d calls after retry, want 1 crossing", len(calls))
	}
}

func TestDeduplicationSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	sigs := []*demarchev1.Signal{
		signal("acled", "GIN1", "GN", coup, 2, t0),
		signal("acled", "GIN 2/with odd chars", "GN", coup, 2, t0.Add(time.Hour)),
		signal("ucdp", "77", "ML", demarchev1.CrisisType_CRISIS_TYPE_GENERAL, 1, t0),
	}
	{
		srv := natstest.ServerIn(t, dir) // stopped below, before the restart
		svc, err := earlywarning.Start(ctx, earlywarning.Config{NATSURL: srv.URL()}, newFakeOpener(), zapNop)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := svc.Ingest(ctx, sigs)
		if err != nil || resp.GetAccepted() != 3 {
			t.Fatalf("first ingest: %v %v", resp, err)
		}
		svc.Stop()
		srv.Stop()
	}
	srv := natstest.ServerIn(t, dir) // same store, new process state
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	resp, err := svc.Ingest(ctx, sigs)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDuplicates() != 3 || resp.GetAccepted() != 0 {
		t.Fatalf("after restart: %v", resp)
	}
	score, err := svc.Score(ctx, "GN", coup)
	if err != nil || len(score.GetContributions()) != 2 || score.GetScore() != 4 {
		t.Fatalf("situation after restart: %v %v", score, err)
	}
}

func TestInvalidSignalOnTheBusIsDeadLettered(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	nc, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	dlq, err := nc.SubscribeSync(eventbus.DeadLetterSubject(earlywarning.SignalsDurable))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the server has the subscription before anything is published
		t.Fatal(err)
	}
	good := signal("ecowarn", "ok-1", "GN", coup, 1, t0)
	msg, err := eventbus.Encode(earlywarning.SignalSubject("ecowarn"), eventbus.Event{ID: "bad-1", Source: "/p", Subject: "GN", Time: time.Now(), Data: good})
	if err != nil {
		t.Fatal(err)
	}
	bad := proto.Clone(good).(*demarchev1.Signal)
	bad.CountryCode = "XX"
	msg.Data, _ = proto.Marshal(bad) // what a careless partner sends
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	dl, err := dlq.NextMsg(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r := dl.Header.Get(eventbus.HeaderDeadLetterReason); !strings.Contains(r, "country_code") {
		t.Errorf("dead-letter reason %q", r)
	}
}

func TestMicroDiscovery(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	startService(t, srv.URL(), earlywarning.Config{Workers: 1}, newFakeOpener()) // one instance: exact stats
	nc, _ := natstest.Connect(t, srv.URL())
	// One JSON request by hand, as `nats req` would send it.
	reply, err := nc.Request(natsrpc.EarlyWarningIngest, []byte(`{"signals":[{"source":"person_duty","sourceId":"op-1","countryCode":"GN","crisisType":"CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE","weight":2,"observedAt":"2023-02-01T00:00:00Z","summary":"Troops near the palace"}]}`), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reply.Data), `"accepted":1`) {
		t.Fatalf("JSON ingest reply %s", reply.Data)
	}
	reply, err = nc.Request(natsrpc.EarlyWarningScore, []byte(`{"country_code":"ZZ"}`), 30*time.Second)
	if err != nil || reply.Header.Get(micro.ErrorCodeHeader) != "400" || !strings.Contains(reply.Header.Get(micro.ErrorHeader), "crisis_type") {
		t.Fatalf("bad score request: %v %v", reply.Header, err)
	}

	info := request[micro.Info](t, nc, "$SRV.INFO."+earlywarning.ServiceName)
	if info.Name != earlywarning.ServiceName || info.Version != earlywarning.ServiceVersion {
		t.Errorf("info %+v", info)
	}
	subjects := map[string]bool{}
	for _, e := range info.Endpoints {
		subjects[e.Subject] = true
	}
	if !subjects[natsrpc.EarlyWarningIngest] || !subjects[natsrpc.EarlyWarningScore] {
		t.Errorf("endpoints %+v", info.Endpoints)
	}
	// micro counts a request once its handler returns, which can be just
	// after the reply reached us: read the stats until they settle.
	var got map[string][2]int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		stats := request[micro.Stats](t, nc, "$SRV.STATS."+earlywarning.ServiceName)
		got = map[string][2]int{}
		for _, e := range stats.Endpoints {
			got[e.Name] = [2]int{e.NumRequests, e.NumErrors}
		}
		if got["ingest"] == [2]int{1, 0} && got["score"] == [2]int{1, 1} || time.Now().After(deadline) {
			break
		}
	}
	if got["ingest"] != [2]int{1, 0} || got["score"] != [2]int{1, 1} {
		t.Errorf("stats %v, want ingest 1 request, score 1 request 1 error", got)
	}
	ping := request[micro.Ping](t, nc, "$SRV.PING")
	if ping.Name != earlywarning.ServiceName {
		t.Errorf("ping %+v", ping)
	}
}

func request[T any](t *testing.T, nc *nats.Conn, subject string) T {
	t.Helper()
	var v T
	reply, err := nc.Request(subject, nil, 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	if err := json.Unmarshal(reply.Data, &v); err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return v
}

// TestRequestErrorsOverNATS: the service's refusals reach a caller as the
// errs vocabulary, in binary protobuf as in JSON.
func TestRequestErrorsOverNATS(t *testing.T) {
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	nc, _ := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	for _, opts := range [][]natsrpc.CallOption{nil, {natsrpc.Protobuf()}} {
		var resp demarchev1.ScoreResponse
		err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: "GN", CrisisType: coup}, &resp, opts...)
		if !errors.Is(err, earlywarning.ErrNoSituation) || !errors.Is(err, errs.ErrNotFound) || errs.HTTPStatus(err) != 404 {
			t.Fatalf("score of an unknown situation: %v", err)
		}
		err = natsrpc.Call(ctx, nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: "ZZ", CrisisType: coup}, &resp, opts...)
		if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "country_code") {
			t.Fatalf("bad score request: %v", err)
		}
	}
	svc.Stop()
	var resp demarchev1.ScoreResponse
	err := natsrpc.Call(ctx, nc, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{CountryCode: "GN", CrisisType: coup}, &resp, natsrpc.Timeout(2*time.Second))
	if !errors.Is(err, errs.ErrUnavailable) || errs.HTTPStatus(err) != 503 {
		t.Fatalf("score once stopped: %v, want unavailable (503)", err)
	}
}

// TestSignalWithoutSourceID: a signal whose source gives no id gets a UUID v7.
func TestSignalWithoutSourceID(t *testing.T) {
	srv := natstest.Server(t)
	svc := startService(t, srv.URL(), earlywarning.Config{}, newFakeOpener())
	resp, err := svc.Ingest(context.Background(), []*demarchev1.Signal{signal("operator", "", "GN", coup, 1, t0), signal("operator", "", "GN", coup, 1, t0)})
	if err != nil || resp.GetAccepted() != 2 {
		t.Fatalf("ingest: %v %v", resp, err)
	}
	for _, r := range resp.GetResults() {
		if u, err := uuid.Parse(r.GetSourceId()); err != nil || u.Version() != 7 {
			t.Errorf("source id %q is not a UUID v7", r.GetSourceId())
		}
	}
}

// TestStreamSignalsCountOnceInBatches: signals waiting on the stream are
// taken in batches; one republished under a new event id (as after the
// stream's de-duplication window) is recognised by its situation and counts
// once; each applied signal is marked, so a later import reports it a
// duplicate.
func TestStreamSignalsCountOnceInBatches(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	_, js := natstest.Connect(t, srv.URL())
	ctx := context.Background()
	if err := earlywarning.EnsureSignalStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	countries := []string{"GN", "ML", "NE", "BF", "SN", "CI"}
	const per = 50
	var all []*demarchev1.Signal
	var last uint64
	publish := func(id string, sig *demarchev1.Signal) {
		msg, err := eventbus.Encode(earlywarning.SignalSubject(sig.GetSource()), eventbus.Event{
			ID: id, Source: "/partner", Subject: demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType()), Time: time.Now(), Data: sig})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	for i := range per {
		for _, c := range countries {
			sig := signal("ecowarn", fmt.Sprintf("%s-%d", c, i), c, coup, 0.1, t0.Add(time.Duration(i)*time.Minute))
			all = append(all, sig)
			publish("first-"+sig.GetSourceId(), sig)
		}
	}
	for _, sig := range all[:30] { // the same signals again, under new event ids
		publish("again-"+sig.GetSourceId(), sig)
	}
	opener := newFakeOpener()
	svc := startService(t, srv.URL(), earlywarning.Config{}, opener)
	cons, err := js.Consumer(ctx, earlywarning.SignalsStream, earlywarning.SignalsDurable)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every signal acknowledged", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream >= last && info.NumAckPending == 0
	})
	for _, c := range countries {
		score, err := svc.Score(ctx, c, coup)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, k := range score.GetContributions() {
			sum += k.GetWeight()
		}
		if len(score.GetContributions()) != per || math.Abs(sum-per*0.1) > 1e-9 {
			t.Errorf("%s: %d contributions weighing %.2f, want %d weighing %.2f", c, len(score.GetContributions()), sum, per, per*0.1)
		}
	}
	if calls, _ := opener.snapshot(); len(calls) != 0 {
		t.Fatalf("below the threshold, yet the opener was called %d times", len(calls))
	}
	resp, err := svc.Ingest(ctx, all[:10])
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDuplicates() != 10 {
		t.Fatalf("importing signals the stream brought: %d duplicates of 10 (%v)", resp.GetDuplicates(), resp.GetResults())
	}
}
