package temporalembed_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
)

// The production Temporal server runs on PostgreSQL: on a new database it
// sets the schema up with Temporal's own tool; stopped and started again on
// the same database, it changes nothing and keeps what it had.
func TestTemporalOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and a Temporal server")
	}
	bin := cluster.PostgresBin()
	if bin == "" {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)")
	}
	dir, err := os.MkdirTemp("", "demarche-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if err := cluster.InitPostgres(bin, data); err != nil {
		t.Fatal(err)
	}
	pgPort, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := cluster.PostgresCredential()
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL starts a second after the Temporal server, as it may in
	// compose, Kubernetes or after a reboot: the server waits for it and
	// still creates its databases (a retry once "created" the postgres
	// database instead, and CI saw "database temporal does not exist").
	pg := exec.Command(filepath.Join(bin, "postgres"), cluster.PostgresArgs(data, pgPort)...)
	pg.Dir = "/"
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	pgStarted := make(chan error, 1)
	time.AfterFunc(time.Second, func() { pgStarted <- pg.Start() })
	t.Cleanup(func() {
		if pg.Process != nil {
			_ = pg.Process.Kill()
			_ = pg.Wait()
		}
	})

	creds := t.TempDir()
	start := func() *temporalembed.Server {
		t.Helper()
		srv, err := temporalembed.Start(temporalembed.Options{Postgres: &temporalembed.Postgres{Port: pgPort}, CredentialsDir: creds}, zap.NewNop())
		if err != nil {
			t.Fatalf("temporal on PostgreSQL: %v", err)
		}
		return srv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := start()
	if err := <-pgStarted; err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	defer temporalx.SetCredentialsFor(srv.HostPort(), creds)()
	c, err := temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.As(temporalx.IdentityAdmin))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: "demarche", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	srv = start() // the same database: the schema is current, the namespace kept
	defer func() { _ = srv.Stop() }()
	defer temporalx.SetCredentialsFor(srv.HostPort(), creds)()
	c, err = temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.As(temporalx.IdentityAdmin))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "demarche"})
	if err != nil {
		t.Fatalf("the namespace registered before the restart: %v", err)
	}
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != 24*time.Hour {
		t.Fatalf("retention after the restart %v, want 24h", got)
	}
}
