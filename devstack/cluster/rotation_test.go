package cluster_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
)

// TestNATSPasswordRotationOnCluster is docs/operations.md's NATS password
// rotation on a running three-node cluster of the generated configurations
// (cluster.NATSServerConfig, deploy/nats/authorization.conf including the
// nats-passwords.conf the nodes share, as a mounted secret): what `demarche
// admin credentials --dir DIR --rotate eventlog` writes (natsauth.Rotate,
// natsauth.WritePasswords; services/cli's TestNATSPasswordRotation runs the
// command itself), then a reload of each node, one after the other (what
// `nats-server --signal reload` does). Every node then refuses the old
// password and accepts the new one; the eventlog client comes back by itself;
// the worker's and funding's connections are never dropped, at any step.
func TestNATSPasswordRotationOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three NATS nodes")
	}
	dir := t.TempDir()
	credDir := filepath.Join(dir, "secrets")
	creds, err := natsauth.Ensure(credDir, natsauth.DeployIdentities()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsauth.WritePasswords(credDir, creds); err != nil {
		t.Fatal(err)
	}
	auth, err := os.ReadFile("../../deploy/nats/authorization.conf")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []cluster.Endpoint
	for range cluster.NATSNodes {
		nodes = append(nodes, cluster.Endpoint{Host: "127.0.0.1", Bind: "127.0.0.1", ClientPort: freePort(t), ClusterPort: freePort(t), Monitor: freePort(t)})
	}
	var servers []*server.Server
	for i, n := range cluster.NATSNodes {
		nodeDir := filepath.Join(dir, n)
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nodeDir, "authorization.conf"), auth, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(natsauth.PasswordsFileName(credDir), filepath.Join(nodeDir, natsauth.PasswordsFile)); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(nodeDir, "nats-server.conf")
		if err := os.WriteFile(conf, []byte(cluster.NATSServerConfig(n, nodes[i], nodes, filepath.Join(nodeDir, "jetstream"), "authorization.conf")), 0o644); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		opts.NoSigs, opts.NoLog = true, true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(srv.Shutdown)
		servers = append(servers, srv)
	}
	waitUntil(t, "the three nodes route to each other", func() bool {
		for _, s := range servers {
			if !s.Running() || s.NumRoutes() < len(servers)-1 {
				return false
			}
		}
		return true
	})

	seeds := cluster.SeedList(nodes)
	connect := func(id natsauth.Identity) *nats.Conn {
		t.Helper()
		u, err := natsauth.WithCredentialsFile(seeds, natsauth.FileName(credDir, id))
		if err != nil {
			t.Fatal(err)
		}
		nc, _, err := natsx.Connect(u, "test-"+string(id), zap.NewNop())
		if err != nil {
			t.Fatalf("%s connects: %v", id, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	eventlog, worker, funding := connect(natsauth.EventLog), connect(natsauth.Worker), connect(natsauth.Funding)
	untouched := func(step string) {
		t.Helper()
		for id, nc := range map[natsauth.Identity]*nats.Conn{natsauth.Worker: worker, natsauth.Funding: funding} {
			if nc.Stats().Reconnects != 0 || !nc.IsConnected() || nc.Flush() != nil {
				t.Fatalf("%s: %s was disturbed by eventlog's rotation: status %v, reconnects %d", step, id, nc.Status(), nc.Stats().Reconnects)
			}
		}
	}
	old := creds[natsauth.EventLog]

	// `demarche admin credentials --dir DIR --rotate eventlog`:
	rotated, err := natsauth.Rotate(credDir, natsauth.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	creds[natsauth.EventLog] = rotated
	if err := natsauth.WritePasswords(credDir, creds); err != nil {
		t.Fatal(err)
	}
	// Reload each node, one after the other.
	for i, s := range servers {
		if err := s.Reload(); err != nil {
			t.Fatalf("reload %s: %v", cluster.NATSNodes[i], err)
		}
		untouched("after reloading " + cluster.NATSNodes[i])
	}

	for i, e := range nodes {
		url := fmt.Sprintf("nats://%s:%d", e.Host, e.ClientPort)
		dial := func(c natsauth.Credentials) error {
			nc, err := nats.Connect(url, nats.UserInfo(c.Identity.User(), c.Password), nats.NoReconnect(), nats.CustomInboxPrefix(natsauth.InboxPrefix(c.Identity)))
			if err == nil {
				nc.Close()
			}
			return err
		}
		if err := dial(old); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: the old password after the reload: %v, want an authorization violation", cluster.NATSNodes[i], err)
		}
		if err := dial(rotated); err != nil {
			t.Errorf("%s: the new password after the reload: %v", cluster.NATSNodes[i], err)
		}
	}
	waitUntil(t, "eventlog reconnects with its new password", func() bool {
		return eventlog.Stats().Reconnects > 0 && eventlog.IsConnected() && eventlog.Flush() == nil
	})
	untouched("at the end")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 minutes", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
