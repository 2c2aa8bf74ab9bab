package cluster_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/demarche/demarche/devstack/cluster"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
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
	// The certificates demarche admin certificates makes (compose's header).
	runDemarche(t, "admin", "certificates", "--dir", dir)
	pki := testPKI{dir: filepath.Join(dir, "nats-tls")}
	other := writeTestPKI(t, filepath.Join(dir, "other"), []string{"nats-1"}, []string{string(id)})
	password := "compose-tls-test-password"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeTestPasswords(t, dir, string(hash))
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
	runDemarche(t, "admin", "certificates", "--dir", dir)
	pki := testPKI{dir: filepath.Join(dir, "nats-tls")}
	hash, err := bcrypt.GenerateFromPassword([]byte("routes-test"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeTestPasswords(t, dir, string(hash))
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

// demarche admin certificates makes a CA per engine, the servers'
// certificate with the names compose and k8s dial (server and client use),
// and a client certificate per identity, each verifying against its CA for
// client authentication; a second run changes nothing, and a deleted client
// certificate is re-issued by the same CA.
func TestAdminCertificates(t *testing.T) {
	dir := t.TempDir()
	runDemarche(t, "admin", "certificates", "--dir", dir)
	read := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	parse := func(path string) *x509.Certificate {
		t.Helper()
		blk, _ := pem.Decode(read(path))
		if blk == nil {
			t.Fatalf("%s: not PEM", path)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return c
	}
	var natsIDs []string
	for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		natsIDs = append(natsIDs, string(id))
	}
	for _, set := range []struct {
		sub     string
		hosts   []string
		clients []string
	}{
		{"nats-tls", []string{"nats-1", "nats-2", "nats-3", "nats-0.nats-headless", "localhost"}, natsIDs},
		{"temporal-tls", []string{"temporal", "temporal-frontend", "localhost"}, temporalx.Identities},
	} {
		d := filepath.Join(dir, set.sub)
		roots := x509.NewCertPool()
		roots.AddCert(parse(filepath.Join(d, "ca.pem")))
		srv := parse(filepath.Join(d, "server.pem"))
		for _, h := range set.hosts {
			if _, err := srv.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("%s/server.pem for %s: %v", set.sub, h, err)
			}
		}
		// A NATS route presents the server certificate as a client too.
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s/server.pem as a client (routes): %v", set.sub, err)
		}
		for _, c := range set.clients {
			cert := parse(filepath.Join(d, c+".pem"))
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("%s/%s.pem: %v", set.sub, c, err)
			}
			if cert.Subject.CommonName != c {
				t.Errorf("%s/%s.pem names %q", set.sub, c, cert.Subject.CommonName)
			}
			if fi, err := os.Stat(filepath.Join(d, c+"-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s/%s-key.pem: %v, mode %v, want 0600", set.sub, c, err, fi)
			}
		}
	}
	// Idempotent: a second run keeps every file; a deleted one comes back
	// from the same CA.
	before := map[string][]byte{}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.pem"))
	for _, f := range files {
		before[f] = read(f)
	}
	worker := filepath.Join(dir, "nats-tls", "worker.pem")
	if err := os.Remove(worker); err != nil {
		t.Fatal(err)
	}
	runDemarche(t, "admin", "certificates", "--dir", dir)
	for f, b := range before {
		if f == worker || f == strings.TrimSuffix(worker, ".pem")+"-key.pem" {
			continue // re-issued with a new key
		}
		if got := read(f); string(got) != string(b) {
			t.Errorf("%s changed on a second run", f)
		}
	}
	if string(read(worker)) == string(before[worker]) {
		t.Errorf("%s: not re-issued", worker)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parse(filepath.Join(dir, "nats-tls", "ca.pem")))
	if _, err := parse(worker).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the re-issued %s does not verify against the CA that was there: %v", worker, err)
	}
}

// writeTestPasswords writes, in dir, the nats-passwords.conf that
// authorization.conf includes, every identity with the same hash.
func writeTestPasswords(t *testing.T, dir, hash string) {
	t.Helper()
	var b strings.Builder
	for _, i := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		fmt.Fprintf(&b, "%s: %q\n", natsauth.PasswordVariable(i), hash)
	}
	if err := os.WriteFile(natsauth.PasswordsFileName(dir), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}
