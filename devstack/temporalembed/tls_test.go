package temporalembed_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/temporalx"
)

// pki writes PEM files for a CA and certificates it signs.
type pki struct {
	t    *testing.T
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{t: t, dir: t.TempDir(), ca: ca, key: key}
	p.file = p.write(name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(name, kind string, der []byte) string {
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return f
}

// issue signs a certificate for name; server certificates name 127.0.0.1 and
// localhost and serve both sides (the server's services dial each other).
func (p *pki) issue(name string, server bool) temporalx.TLSFiles {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return temporalx.TLSFiles{
		CertFile: p.write(name+".pem", "CERTIFICATE", der),
		KeyFile:  p.write(name+"-key.pem", "EC PRIVATE KEY", keyDER),
		CAFile:   p.file,
	}
}

// With mTLS required, the frontend refuses a client without a certificate,
// a plaintext client and a client whose certificate another CA signed; a
// client with a certificate of the cluster's CA works.
func TestMutualTLSRequired(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded Temporal; skipped with -short")
	}
	ca := newPKI(t, "demarche-test")
	creds := t.TempDir()
	srv, err := temporalembed.Start(temporalembed.Options{
		DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"), Namespace: "demarche", LogLevel: "error",
		TLS: ca.issue("temporal-server", true), CredentialsDir: creds,
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	defer temporalx.SetCredentialsFor(srv.HostPort(), creds)()
	if srv.HTTPPort() != 0 {
		t.Errorf("HTTP API on port %d without HTTPAPI: it is off unless asked for", srv.HTTPPort())
	}
	ctx := context.Background()
	worker := ca.issue("demarche-worker", false)

	refused := map[string]temporalx.TLSFiles{
		"plaintext": {},
		"no client certificate": func() temporalx.TLSFiles {
			// Trusts the server, presents nothing: a certificate file is
			// required by Dial, so build the config by hand below.
			return temporalx.TLSFiles{CAFile: worker.CAFile}
		}(),
		"certificate of another CA": func() temporalx.TLSFiles {
			f := newPKI(t, "intruder").issue("intruder", false)
			f.CAFile = worker.CAFile // trusts the server, but the server does not trust it
			return f
		}(),
	}
	for name, files := range refused {
		t.Run(name, func(t *testing.T) {
			tc, err := dialNoCheck(ctx, srv.HostPort(), files)
			if err == nil {
				defer tc.Close()
				_, err = tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "demarche"})
			}
			if err == nil {
				t.Fatalf("%s: the frontend answered", name)
			}
			t.Logf("%s refused: %v", name, err)
		})
	}

	tc, err := temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.WithTLS(worker), temporalx.As(temporalx.IdentityObserver))
	if err != nil {
		t.Fatalf("client with the cluster CA's certificate: %v", err)
	}
	defer tc.Close()
	if _, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "demarche"}); err != nil {
		t.Fatalf("describe namespace with a certificate: %v", err)
	}
}

// dialNoCheck dials like temporalx.Dial, also for the half-configured
// "CA only" case that Dial itself refuses before connecting.
func dialNoCheck(ctx context.Context, hostPort string, f temporalx.TLSFiles) (interface {
	Close()
	WorkflowService() workflowservice.WorkflowServiceClient
}, error) {
	if f.CertFile == "" && f.CAFile != "" {
		if err := f.Check(); err == nil {
			return nil, errors.New("Check accepted a CA without a certificate")
		}
		return dialCAOnly(ctx, hostPort, f.CAFile)
	}
	return temporalx.Dial(ctx, hostPort, "demarche", zap.NewNop(), temporalx.WithTLS(f), temporalx.As(temporalx.IdentityObserver))
}

// A plaintext frontend listens on loopback only: any other address is
// refused before anything is bound.
func TestPlaintextOnLoopbackOnly(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "192.0.2.10", "::"} {
		_, err := temporalembed.Start(temporalembed.Options{
			Host: host, DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"), Namespace: "demarche",
		}, zap.NewNop())
		if !errors.Is(err, temporalembed.ErrNotLoopback) {
			t.Errorf("host %s: got %v, want ErrNotLoopback", host, err)
		}
		if _, err := temporalembed.StartUI(host, 0, "--ui-port", "127.0.0.1:7233", "demarche", temporalx.TLSFiles{}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("UI on host %s: got %v, want a loopback-only refusal", host, err)
		}
	}
}
