package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// A --token given without --server goes to the gateway `demarche login`
// stored, not to the default port: the token must not reach whatever listens
// on 127.0.0.1:8080.
func TestTokenWithoutServerGoesToTheLoginServer(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("DEMARCHE_SERVER", "")
	got := make(chan string, 1)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer gw.Close()
	if _, err := saveCredentials(credentials{Server: gw.URL, Token: "stored-token"}); err != nil {
		t.Fatal(err)
	}
	app := &App{Token: "given-token", Log: zap.NewNop()}
	c, err := app.api()
	if err != nil {
		t.Fatal(err)
	}
	if c.server != gw.URL {
		t.Fatalf("--token without --server goes to %s, want the stored %s", c.server, gw.URL)
	}
	var out map[string]any
	if err := c.do(context.Background(), http.MethodGet, "/v1/whoami", nil, nil, &out); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a != "Bearer given-token" {
		t.Errorf("the stored gateway got Authorization %q, want the given token", a)
	}
	// --server still wins, and without a stored login the default remains.
	app.Server = "http://gateway.example:8080"
	if c, _ := app.api(); c.server != app.Server {
		t.Errorf("--server %s: went to %s", app.Server, c.server)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	app.Server = ""
	if c, _ := app.api(); c.server != DefaultServer {
		t.Errorf("no login stored: went to %s, want %s", c.server, DefaultServer)
	}
}

// `events tail --data-dir DIR` connects with DIR's operator credentials,
// wherever it runs: a server that knows only DIR's users lets it in and it
// prints the event; a folder without credentials is said so.
func TestEventsTailUsesTheDataDirCredentials(t *testing.T) {
	t.Setenv("DEMARCHE_DATA_DIR", filepath.Join(t.TempDir(), "elsewhere")) // not the folder pointed at
	t.Setenv("DEMARCHE_NATS_CREDS", "")
	dataDir := t.TempDir()
	creds, err := natsauth.Ensure(filepath.Join(dataDir, "nats-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: creds}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	connect := func(id natsauth.Identity) *eventbus.Publisher {
		u, err := creds[id].URL(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		nc, js, err := natsx.Connect(u, "test-"+string(id), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if id == natsauth.Provisioner {
			if err := eventbus.EnsureStreams(context.Background(), js, eventbus.StreamOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		return eventbus.NewPublisher(js, "/test")
	}
	connect(natsauth.Provisioner)
	pub := connect(natsauth.Worker)
	route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: "GN-20261207-TAIL1"}
	ev := eventbus.Event{ID: "tail-event-1", Source: "/test", Subject: route.CrisisID, Time: time.Now(),
		Data: &demarchev1.CrisisOpened{Crisis: &demarchev1.Crisis{Id: route.CrisisID, Title: "tail", CountryCode: "GN",
			Region: demarchev1.Region_REGION_AFRICA, CrisisType: demarchev1.CrisisType_CRISIS_TYPE_GENERAL, Severity: 2,
			Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, OpenedAt: timestamppb.Now()}}}
	if _, err := pub.Publish(context.Background(), route, ev); err != nil {
		t.Fatal(err)
	}

	tail := func(args ...string) (string, error) {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"events", "tail", "--nats-url", srv.ClientURL(), "--all", "--count", "1", "--log-level", "error"}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := tail("--data-dir", dataDir, "--output", "json")
	if err != nil {
		t.Fatalf("events tail --data-dir %s: %v\n%s", dataDir, err, out)
	}
	if !strings.Contains(out, `"id":"tail-event-1"`) && !strings.Contains(out, `"id": "tail-event-1"`) {
		t.Errorf("events tail --data-dir printed no event:\n%s", out)
	}
	// Without --data-dir it looks in DEMARCHE_DATA_DIR, which has none: the
	// server refuses a connection without credentials.
	if out, err := tail(); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("events tail without credentials: %v\n%s", err, out)
	}
	empty := t.TempDir()
	if _, err := tail("--data-dir", empty); err == nil || !strings.Contains(err.Error(), "no NATS credentials") {
		t.Errorf("events tail --data-dir on a folder without credentials: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "nats-credentials")); err == nil {
		t.Error("events tail made a credentials folder")
	}
}
