// Package natsembed runs a NATS server with JetStream inside the process: for
// `demarche dev` and for integration tests. Production points at a cluster.
package natsembed

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/ports"
)

// Options configure the embedded server.
type Options struct {
	Host string // default 127.0.0.1
	// Port to listen on; 0 picks a free one (tests).
	Port int
	// StoreDir holds JetStream's file storage; it survives restarts.
	StoreDir string
	// PortFlag names the flag that sets Port, for the error when it is taken.
	PortFlag string
	// Users, when set, are the only users allowed in, each with the
	// permissions natsauth.Table gives its identity; unauthenticated
	// connections are refused.
	Users map[natsauth.Identity]natsauth.Credentials
	// TLS, when set, makes client connections TLS only (see TLSFiles).
	TLS *TLSFiles
	// ExtraUsers are let in beside Users with the permissions they carry:
	// `demarche bench` adds its own user for the bare baselines, on subjects
	// no service uses, so the table of production identities stays as it is.
	ExtraUsers []*server.User
	// StoreKey, when set, encrypts JetStream's files at rest (AES-GCM, the
	// server's own store encryption): a confidential crisis's events are not
	// readable from the disk. A plaintext store is converted on first start
	// with a key; a store opened with another key is refused as corrupt.
	StoreKey string
}

// TLSFiles configure TLS for client connections: the server's certificate
// and key, and, when clients must present certificates too (mutual TLS), the
// CA that signs theirs.
type TLSFiles struct {
	Cert, Key string
	// ClientCA, when set, requires and verifies client certificates.
	ClientCA string
}

// tlsConfig builds the server's TLS configuration from files.
func (f *TLSFiles) tlsConfig() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("nats: TLS needs both a certificate and a key file")
	}
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: f.Cert, KeyFile: f.Key, CaFile: f.ClientCA, Verify: f.ClientCA != ""})
	if err != nil {
		return nil, fmt.Errorf("nats: TLS: %w", err)
	}
	return cfg, nil
}

// serverUsers turns credentials into server users with their permissions.
// The server holds bcrypt hashes, as deploy/ configures production, never the
// passwords themselves (the clients' credential files hold those). The cost
// is bcrypt's minimum: the hash never leaves this process, and every client
// connection pays for one comparison.
func serverUsers(users map[natsauth.Identity]natsauth.Credentials) ([]*server.User, error) {
	var out []*server.User
	ids := slices.Clone(natsauth.Identities)
	var extra []natsauth.Identity
	for id := range users {
		if !slices.Contains(ids, id) {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	for _, id := range append(ids, extra...) {
		c, ok := users[id]
		if !ok {
			continue
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(c.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("hash the password of %s: %w", id.User(), err)
		}
		p := natsauth.PermissionsOf(id, extra...)
		out = append(out, &server.User{Username: id.User(), Password: string(hash), Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish, Deny: p.PublishDeny},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
		}})
	}
	return out, nil
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(opts Options, log *zap.Logger) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.StoreDir == "" {
		return nil, errors.New("nats: a JetStream store directory is required")
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	} else if err := ports.CheckFree(opts.Host, port, opts.PortFlag); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	sopts := &server.Options{
		ServerName:   "demarche-dev",
		Host:         opts.Host,
		Port:         port,
		JetStream:    true,
		StoreDir:     opts.StoreDir,
		NoSigs:       true,
		JetStreamKey: opts.StoreKey,
		// The HTTP monitoring endpoint is off: one port less to collide.
	}
	if opts.StoreKey != "" {
		sopts.JetStreamCipher = server.AES
	}
	if len(opts.Users) > 0 {
		users, err := serverUsers(opts.Users)
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		sopts.Users = append(users, opts.ExtraUsers...)
	}
	if opts.TLS != nil {
		cfg, err := opts.TLS.tlsConfig()
		if err != nil {
			return nil, err
		}
		sopts.TLSConfig, sopts.TLS, sopts.TLSTimeout = cfg, true, 5
		sopts.TLSVerify = opts.TLS.ClientCA != ""
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("nats: configure server: %w", err)
	}
	ns.SetLoggerV2(&zapNATSLogger{log: log.Named("nats").Sugar()}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats: server on %s:%d not ready after 30s", opts.Host, port)
	}
	return &Server{Server: ns}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

type zapNATSLogger struct{ log *zap.SugaredLogger }

func (l *zapNATSLogger) Noticef(format string, v ...any) { l.log.Debugf(format, v...) }
func (l *zapNATSLogger) Warnf(format string, v ...any)   { l.log.Warnf(format, v...) }
func (l *zapNATSLogger) Fatalf(format string, v ...any)  { l.log.Errorf(format, v...) }
func (l *zapNATSLogger) Errorf(format string, v ...any)  { l.log.Errorf(format, v...) }
func (l *zapNATSLogger) Debugf(format string, v ...any)  { l.log.Debugf(format, v...) }
func (l *zapNATSLogger) Tracef(format string, v ...any)  { l.log.Debugf(format, v...) }

// StoreKeyFile is the file in a data folder that holds the JetStream store's
// encryption key.
const StoreKeyFile = "nats-store.key"

// EnsureStoreKey returns the store key kept in file, creating it (32 random
// bytes, hex, mode 0600) on first use. Losing the file loses the store.
func EnsureStoreKey(file string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		key := strings.TrimSpace(string(b))
		if len(key) < 32 {
			return "", fmt.Errorf("nats store key %s: %d characters, want at least 32", file, len(key))
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read nats store key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("make nats store key: %w", err)
	}
	key := hex.EncodeToString(raw)
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write nats store key: %w", err)
	}
	return key, nil
}
