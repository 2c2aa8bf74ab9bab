package temporalx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/demarche/demarche/pkg/payloadcodec"
)

// Environment variables naming the mTLS files of every Temporal client of a
// process (the CLI's --temporal-tls-* flags default to them).
const (
	EnvTLSCert       = "DEMARCHE_TEMPORAL_TLS_CERT"
	EnvTLSKey        = "DEMARCHE_TEMPORAL_TLS_KEY"
	EnvTLSCA         = "DEMARCHE_TEMPORAL_TLS_CA"
	EnvTLSServerName = "DEMARCHE_TEMPORAL_TLS_SERVER_NAME"
)

// TLSFiles are a client's (or the embedded server's) mTLS credentials, PEM
// files: its certificate and key, and the CA that signed the other side's
// certificate. The zero value means plaintext, which only a loopback
// frontend (`demarche dev`) accepts.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
	// ServerName is the name the server's certificate must carry (default:
	// the host of the address dialled).
	ServerName string
}

// Enabled reports whether any file is set.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

// Check says which file is missing or unreadable (nil for plaintext or a complete set).
func (f TLSFiles) Check() error {
	if !f.Enabled() {
		return nil
	}
	var errsOut []error
	for _, x := range []struct{ flag, env, path string }{
		{"--temporal-tls-cert", EnvTLSCert, f.CertFile},
		{"--temporal-tls-key", EnvTLSKey, f.KeyFile},
		{"--temporal-tls-ca", EnvTLSCA, f.CAFile},
	} {
		if x.path == "" {
			errsOut = append(errsOut, fmt.Errorf("%s (env %s): is required with the other Temporal TLS files (mTLS needs a certificate, its key and the CA)", x.flag, x.env))
			continue
		}
		if _, err := os.Stat(x.path); err != nil {
			errsOut = append(errsOut, fmt.Errorf("%s (env %s): %w", x.flag, x.env, err))
		}
	}
	return errors.Join(errsOut...)
}

// ClientConfig is the tls.Config of a client presenting the certificate and
// trusting only the CA (nil for plaintext).
func (f TLSFiles) ClientConfig() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	if err := f.Check(); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("temporal TLS: load certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
	}
	pool, err := CAPool(f.CAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: f.ServerName, MinVersion: tls.VersionTLS12}, nil
}

// CAPool reads a PEM file of CA certificates.
func CAPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("temporal TLS: read CA %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("temporal TLS: CA %s holds no PEM certificate", file)
	}
	return pool, nil
}

// TLSFromEnv reads the files from the environment.
func TLSFromEnv() TLSFiles {
	return TLSFiles{CertFile: os.Getenv(EnvTLSCert), KeyFile: os.Getenv(EnvTLSKey), CAFile: os.Getenv(EnvTLSCA), ServerName: os.Getenv(EnvTLSServerName)}
}

var (
	defaultTLSMu sync.Mutex
	defaultTLS   *TLSFiles
)

// SetDefaultTLS sets the credentials every Dial of this process uses when
// given no WithTLS option: the CLI calls it once from its flags, so the
// worker, gateway, early warning, partners and the offline tools all dial
// with them. Without a call, Dial reads the environment.
func SetDefaultTLS(f TLSFiles) {
	defaultTLSMu.Lock()
	defer defaultTLSMu.Unlock()
	defaultTLS = &f
}

func processTLS() TLSFiles {
	defaultTLSMu.Lock()
	defer defaultTLSMu.Unlock()
	if defaultTLS != nil {
		return *defaultTLS
	}
	return TLSFromEnv()
}

// DialOption changes how Dial connects.
type DialOption func(*dialOptions)

type dialOptions struct {
	tls      *TLSFiles
	codec    *payloadcodec.Keyring
	codecSet bool
	// identity is the Démarche identity the client acts as (As).
	identity string
	// apiKey, when set, is presented whatever the identity's credentials.
	apiKey *string
}

// As dials as one of Démarche's Temporal identities ("worker", "gateway",
// "earlywarning", "partners", "funding", "roster", "audit", "auditor",
// "observer", "admin"): the client presents that identity's credential, and
// the server's authorizer lets it do what that identity may, nothing more.
func As(identity string) DialOption { return func(o *dialOptions) { o.identity = identity } }

// WithAPIKey dials presenting this key ("": none), whatever the identity's
// credentials: for tests of forged and missing credentials.
func WithAPIKey(key string) DialOption { return func(o *dialOptions) { o.apiKey = &key } }

// WithCodec dials with this payload codec keyring (nil: none), whatever the
// address's or the process's.
func WithCodec(k *payloadcodec.Keyring) DialOption {
	return func(o *dialOptions) { o.codec, o.codecSet = k, true }
}

// WithTLS dials with these credentials (the zero TLSFiles: plaintext),
// whatever the process default.
func WithTLS(f TLSFiles) DialOption { return func(o *dialOptions) { o.tls = &f } }
