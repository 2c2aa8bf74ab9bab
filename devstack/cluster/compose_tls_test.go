package cluster_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/ports"
)

// A NATS server on compose's configuration (NATSServerConfigTLS, the users
// of deploy/nats/authorization.conf) takes a Démarche process that presents
// what compose mounts for it (the CA, its own client certificate, its
// password: DEMARCHE_NATS_CA, _CERT, _KEY as compose sets them) and refuses
// one without a client certificate, one that does not check the server, and
// one whose certificate another CA signed.
func TestComposeNATSTLSConnects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS server")
	}
	dir := t.TempDir()
	id := natsauth.EventLog
	pki := writeTestPKI(t, filepath.Join(dir, "tls"), []string{"nats-1"}, []string{string(id)})
	other := writeTestPKI(t, filepath.Join(dir, "other"), []string{"nats-1"}, []string{string(id)})
	password := "compose-tls-test-password"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		t.Setenv(natsauth.PasswordVariable(i), `"`+string(hash)+`"`)
	}
	auth, err := os.ReadFile("../../deploy/nats/authorization.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorization.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	var p [3]int
	for i := range p {
		if p[i], err = ports.Free("127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	self := cluster.Endpoint{Host: "127.0.0.1", Bind: "127.0.0.1", ClientPort: p[0], ClusterPort: p[1], Monitor: p[2]}
	conf := filepath.Join(dir, "nats-1.conf")
	text := cluster.NATSServerConfigTLS("nats-1", self, []cluster.Endpoint{self}, filepath.Join(dir, "js"), "authorization.conf", pki.natsTLS())
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server refuses compose's configuration: %v", err)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	url := fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", id.User(), password, p[0])
	connect := func(ca, cert, key string) error {
		t.Setenv(natsx.EnvCA, ca)
		t.Setenv(natsx.EnvCert, cert)
		t.Setenv(natsx.EnvKey, key)
		nc, _, err := natsx.Connect(url, "compose-tls-test", zap.NewNop())
		if err == nil {
			nc.Close()
		}
		return err
	}
	own, ownKey := pki.path(string(id)+".pem"), pki.path(string(id)+"-key.pem")
	if err := connect(pki.path("ca.pem"), own, ownKey); err != nil {
		t.Fatalf("a client with what compose mounts (CA, its own certificate, its password) is refused: %v", err)
	}
	for what, c := range map[string][3]string{
		"no client certificate":          {pki.path("ca.pem"), "", ""},
		"no CA (plaintext)":              {"", "", ""},
		"a certificate of another CA":    {pki.path("ca.pem"), other.path(string(id) + ".pem"), other.path(string(id) + "-key.pem")},
		"a server checked against no CA": {other.path("ca.pem"), own, ownKey},
	} {
		if err := connect(c[0], c[1], c[2]); err == nil {
			t.Errorf("%s: connected", what)
		}
	}
}

// Three nodes on compose's configuration (NATSServerConfigTLS) form their
// cluster over TLS routes: each node's one certificate (server and client
// use) is accepted by the others, whose route listeners verify it.
func TestComposeNATSRoutesOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS servers")
	}
	dir := t.TempDir()
	pki := writeTestPKI(t, filepath.Join(dir, "tls"), cluster.NATSNodes, nil)
	hash, err := bcrypt.GenerateFromPassword([]byte("routes-test"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		t.Setenv(natsauth.PasswordVariable(i), `"`+string(hash)+`"`)
	}
	auth, err := os.ReadFile("../../deploy/nats/authorization.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorization.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []cluster.Endpoint
	for range cluster.NATSNodes {
		var p [3]int
		for i := range p {
			if p[i], err = ports.Free("127.0.0.1"); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, cluster.Endpoint{Host: "127.0.0.1", Bind: "127.0.0.1", ClientPort: p[0], ClusterPort: p[1], Monitor: p[2]})
	}
	var servers []*server.Server
	for i, n := range cluster.NATSNodes {
		conf := filepath.Join(dir, n+".conf")
		text := cluster.NATSServerConfigTLS(n, nodes[i], nodes, filepath.Join(dir, n), "authorization.conf", pki.natsTLS())
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("nats-server refuses %s: %v", n, err)
		}
		opts.NoSigs, opts.NoLog = true, true
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		servers = append(servers, srv)
	}
	// Routes come up as the nodes find each other (bounded wait, no timing asserted).
	// peers are the other nodes a node has a route to (a route pool opens
	// several connections to one peer: counted once).
	peers := func(s *server.Server) []string {
		rz, err := s.Routez(nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rz.Routes {
			if !slices.Contains(out, r.RemoteName) {
				out = append(out, r.RemoteName)
			}
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := true
		for _, s := range servers {
			done = done && len(peers(s)) == len(servers)-1
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for i, s := range servers {
				t.Errorf("%s: routes to %v, want the %d other nodes (TLS routes)", cluster.NATSNodes[i], peers(s), len(servers)-1)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, s := range servers {
		if got := peers(s); slices.Contains(got, cluster.NATSNodes[i]) {
			t.Errorf("%s: a route to itself %v", cluster.NATSNodes[i], got)
		}
	}
}
