package natsembed_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
)

// certs writes a CA, and a certificate for 127.0.0.1 signed by it, to dir.
func certs(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	parent, signer := tmpl, key
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, certFile, keyFile
}

// TestTLSClientConnections: with TLS configured, clients connect only over
// TLS and only when they trust the server's CA; natsx.Connect takes the CA
// (and a client certificate, for mutual TLS) from the environment.
func TestTLSClientConnections(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caFile, _ := certs(t, dir, "ca", nil, nil)
	_, _, serverCert, serverKey := certs(t, dir, "server", ca, caKey)
	_, _, clientCert, clientKey := certs(t, dir, "client", ca, caKey)
	_, _, otherCAFile, _ := certs(t, dir, "other-ca", nil, nil)
	creds, err := natsauth.Ensure(filepath.Join(dir, "creds"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mutual := range []bool{false, true} {
		files := &natsembed.TLSFiles{Cert: serverCert, Key: serverKey}
		if mutual {
			files.ClientCA = caFile
		}
		srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: creds, TLS: files}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		url, _ := creds[natsauth.Observer].URL(srv.URL())
		// No TLS at all: refused.
		if nc, err := nats.Connect(url, nats.Timeout(3*time.Second)); err == nil {
			nc.Close()
			t.Fatalf("mutual=%v: a plain-text client connected", mutual)
		}
		// A CA that did not sign the server's certificate: refused.
		t.Setenv(natsx.EnvCA, otherCAFile)
		if nc, _, err := natsx.Connect(url, "tls-test", zap.NewNop()); err == nil {
			nc.Close()
			t.Fatalf("mutual=%v: connected trusting another CA", mutual)
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("mutual=%v: refusal does not name the certificate: %v", mutual, err)
		}
		t.Setenv(natsx.EnvCA, caFile)
		nc, _, err := natsx.Connect(url, "tls-test", zap.NewNop())
		if mutual {
			// Without a client certificate: refused; with one: in.
			if err == nil {
				nc.Close()
				t.Fatal("mutual TLS: connected without a client certificate")
			}
			t.Setenv(natsx.EnvCert, clientCert)
			t.Setenv(natsx.EnvKey, clientKey)
			nc, _, err = natsx.Connect(url, "tls-test", zap.NewNop())
		}
		if err != nil {
			t.Fatalf("mutual=%v: trusted client refused: %v", mutual, err)
		}
		if !nc.TLSRequired() {
			t.Fatalf("mutual=%v: connection not over TLS", mutual)
		}
		nc.Close()
		// TLS does not replace the credentials: a wrong password is still refused.
		bad := natsauth.Credentials{Identity: natsauth.Observer, Password: "guess"}
		badURL, _ := bad.URL(srv.URL())
		if nc, _, err := natsx.Connect(badURL, "tls-test", zap.NewNop()); err == nil {
			nc.Close()
			t.Fatalf("mutual=%v: wrong password connected over TLS", mutual)
		}
		srv.Stop()
		t.Setenv(natsx.EnvCert, "")
		t.Setenv(natsx.EnvKey, "")
	}
	t.Setenv(natsx.EnvCA, filepath.Join(dir, "missing.pem"))
	if _, err := natsx.TLSOptions(); err == nil || !strings.Contains(err.Error(), natsx.EnvCA) {
		t.Fatalf("missing CA file: %v", err)
	}
}

// TestDeployServerConfig: nats-server accepts deploy/nats/nats-server.conf
// (with certificates made here) and it requires TLS with verified clients.
func TestDeployServerConfig(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caFile, _ := certs(t, dir, "ca", nil, nil)
	_, _, cert, key := certs(t, dir, "server", ca, caKey)
	for name, v := range map[string]string{"NATS_SERVER_NAME": "nats-0", "NATS_STORE_DIR": filepath.Join(dir, "js"),
		"DEMARCHE_NATS_TLS_CERT": cert, "DEMARCHE_NATS_TLS_KEY": key, "DEMARCHE_NATS_TLS_CA": caFile} {
		t.Setenv(name, v)
	}
	// The two files side by side, and the password hash files beside them
	// (nats-passwords.conf, as `demarche admin credentials` writes it).
	for _, f := range []string{"nats-server.conf", "authorization.conf"} {
		b, err := os.ReadFile(filepath.Join("../../deploy/nats", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	creds := map[natsauth.Identity]natsauth.Credentials{}
	for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		creds[id] = natsauth.Credentials{Identity: id, Password: "pw"}
	}
	if err := natsauth.WritePasswords(dir, creds); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatalf("nats-server refuses deploy/nats/nats-server.conf: %v", err)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || !opts.JetStream || !opts.SyncAlways || len(opts.Users) == 0 {
		t.Fatalf("configuration: tls=%v jetstream=%v sync_always=%v users=%d", opts.TLSConfig != nil, opts.JetStream, opts.SyncAlways, len(opts.Users))
	}
}
