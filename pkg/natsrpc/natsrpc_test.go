package natsrpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

const testSubject = "test.score"

// serve registers fn as the test.score endpoint.
func serve(t *testing.T, nc *nats.Conn, fn func(context.Context, *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error), opts ...HandlerOption) {
	t.Helper()
	serveAt(t, nc, "score", fn, opts...)
}

// serveAt registers fn as the test.<name> endpoint of its own service instance.
func serveAt(t *testing.T, nc *nats.Conn, name string, fn func(context.Context, *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error), opts ...HandlerOption) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: "test", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := svc.AddGroup("test").AddEndpoint(name, Handler(func() *demarchev1.ScoreRequest { return &demarchev1.ScoreRequest{} }, fn, opts...)); err != nil {
		t.Fatal(err)
	}
	if err := Ready(nc); err != nil {
		t.Fatal(err)
	}
}

var valid = &demarchev1.ScoreRequest{CountryCode: "GN", CrisisType: demarchev1.CrisisType_CRISIS_TYPE_GENERAL}

func TestEncodingsAndErrorCodes(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	errUnknown := errs.Sentinel("unknown situation", errs.ErrNotFound)
	serve(t, nc, func(_ context.Context, req *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
		switch req.GetCountryCode() {
		case "ML":
			return nil, fmt.Errorf("%w: ML", errUnknown)
		case "NE":
			return nil, fmt.Errorf("%w: four-eyes", errs.ErrRule)
		case "SN":
			return nil, fmt.Errorf("%w: store down", errs.ErrUnavailable)
		case "TD":
			return nil, errors.New("boom")
		}
		return &demarchev1.ScoreResponse{CountryCode: req.GetCountryCode(), Score: 4.5}, nil
	})
	ctx := context.Background()
	for _, opts := range [][]CallOption{nil, {Protobuf()}} {
		var resp demarchev1.ScoreResponse
		if err := Call(ctx, nc, testSubject, valid, &resp, opts...); err != nil || resp.GetScore() != 4.5 {
			t.Fatalf("call %d options: %v %v", len(opts), &resp, err)
		}
		for country, want := range map[string]error{"ZZ": errs.ErrInvalid, "ML": errUnknown, "NE": errs.ErrRule, "SN": errs.ErrUnavailable, "TD": errs.ErrInternal} {
			req := &demarchev1.ScoreRequest{CountryCode: country, CrisisType: valid.GetCrisisType()}
			err := Call(ctx, nc, testSubject, req, &resp, opts...)
			var rpcErr *errs.RPCError
			if !errors.Is(err, want) || !errors.As(err, &rpcErr) || rpcErr.Code != errs.Code(want) {
				t.Errorf("%s: %v, want %v (code %s)", country, err, want, errs.Code(want))
			}
		}
	}
	// By hand, as `nats req` sends it: JSON in, JSON out.
	reply, err := nc.Request(testSubject, []byte(`{"country_code":"GN","crisis_type":"CRISIS_TYPE_GENERAL"}`), 5*time.Second)
	if err != nil || !strings.Contains(string(reply.Data), `"score":4.5`) || reply.Header.Get("Content-Type") != "" {
		t.Fatalf("JSON by hand: %s %v %v", reply.Data, reply.Header, err)
	}
	reply, err = nc.Request(testSubject, []byte(`{not json`), 5*time.Second)
	if err != nil || reply.Header.Get(micro.ErrorCodeHeader) != "400" {
		t.Fatalf("undecodable: %v %v", reply.Header, err)
	}
}

func TestNobodyAnsweringIsUnavailable(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	err := Call(context.Background(), nc, "test.nobody", valid, &demarchev1.ScoreResponse{})
	if !errors.Is(err, errs.ErrUnavailable) || !errors.Is(err, nats.ErrNoResponders) || errs.HTTPStatus(err) != 503 {
		t.Fatalf("no responders: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	serve(t, nc, func(ctx context.Context, _ *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
		select {
		case <-ctx.Done(): // the handler's own timeout
			return nil, fmt.Errorf("%w: %w", errs.ErrUnavailable, ctx.Err())
		case <-time.After(5 * time.Second):
			return &demarchev1.ScoreResponse{}, nil
		}
	}, WithTimeout(300*time.Millisecond))
	// The call's timeout is shorter than the handler's: the caller gives up.
	start := time.Now()
	err := Call(context.Background(), nc, testSubject, valid, &demarchev1.ScoreResponse{}, Timeout(50*time.Millisecond))
	if !errors.Is(err, errs.ErrUnavailable) || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("call timeout: %v after %s", err, time.Since(start))
	}
	// The handler's timeout is shorter than the call's: the service answers 503.
	err = Call(context.Background(), nc, testSubject, valid, &demarchev1.ScoreResponse{}, Timeout(3*time.Second))
	var rpcErr *errs.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != "503" {
		t.Fatalf("handler timeout: %v", err)
	}
}

func TestGuardRefusesWhileStoppingAndWaitsForInFlight(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv.URL())
	var g Guard
	entered, release := make(chan struct{}, 1), make(chan struct{})
	serve(t, nc, func(context.Context, *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
		entered <- struct{}{}
		<-release
		return &demarchev1.ScoreResponse{Score: 1}, nil
	}, WithGuard(&g))
	// A second endpoint behind the same guard (one endpoint serves one request at a time).
	serveAt(t, nc, "other", func(context.Context, *demarchev1.ScoreRequest) (*demarchev1.ScoreResponse, error) {
		return &demarchev1.ScoreResponse{Score: 2}, nil
	}, WithGuard(&g))
	if err := Call(context.Background(), nc, "test.other", valid, &demarchev1.ScoreResponse{}); err != nil {
		t.Fatalf("before stopping: %v", err)
	}
	first := make(chan error, 1)
	go func() { first <- Call(context.Background(), nc, testSubject, valid, &demarchev1.ScoreResponse{}) }()
	<-entered
	stopped := make(chan struct{})
	go func() { g.Stop(); close(stopped) }()
	for {
		g.mu.Lock()
		stopping := g.stopping
		g.mu.Unlock()
		if stopping {
			break
		}
		time.Sleep(time.Millisecond)
	}
	err := Call(context.Background(), nc, "test.other", valid, &demarchev1.ScoreResponse{})
	var rpcErr *errs.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != "503" || !errors.Is(err, errs.ErrUnavailable) {
		t.Fatalf("request while stopping: %v, want 503", err)
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned with a request in hand")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("request in hand: %v", err)
	}
	<-stopped
}
