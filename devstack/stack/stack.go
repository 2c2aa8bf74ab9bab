// Package stack runs the whole platform in one process for `demarche dev` and
// for integration tests: embedded NATS with JetStream, an embedded Temporal
// server on SQLite, and every service, wired exactly as in production (over
// NATS and Temporal, by address).
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/contract"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/eventlog"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/services/roster"
	"github.com/demarche/demarche/services/worker"
)

// ErrDataDirLocked is returned when another stack uses the data folder.
var ErrDataDirLocked = errors.New("data folder in use by another demarche dev")

// Config configures the stack. Ports left at 0 are picked free (tests).
type Config struct {
	DataDir          string
	Host             string
	NATSPort         int
	TemporalPort     int
	TemporalHTTPPort int
	Namespace        string
	// Flag names, for errors about taken ports.
	NATSPortFlag, TemporalPortFlag, TemporalHTTPPortFlag string
	// TemporalLogLevel is the embedded Temporal server's log level (default warn).
	TemporalLogLevel string
	// HTTPPort serves the HTTP API (0: a free port).
	HTTPPort     int
	HTTPPortFlag string
	// UIPort serves the Temporal Web UI (0: a free port); NoUI turns it off.
	UIPort     int
	UIPortFlag string
	NoUI       bool
	// ExtraNATSUsers are let into the embedded NATS server beside the
	// services' identities (demarche bench's baseline user).
	ExtraNATSUsers []*server.User
	// MetricsAddr serves Prometheus /metrics for the whole process ("": off;
	// "127.0.0.1:0": a free port). PprofAddr serves /debug/pprof/ (opt-in: "" off).
	MetricsAddr, PprofAddr string
}

// Stack is the running platform.
type Stack struct {
	cfg      Config
	lock     *os.File
	nats     *natsembed.Server
	temporal *temporalembed.Server
	ui       *temporalembed.UI
	gateway  *gateway.Service
	issuer   *authn.Issuer
	tokens   map[string]string // demo identity -> token file
	creds    map[natsauth.Identity]natsauth.Credentials
	stops    []func()
	metrics  string
	pprof    string
}

// CredentialsDir is where `demarche dev` keeps each NATS identity's
// credentials (<identity>.creds, mode 0600), inside the data folder.
const CredentialsDir = "nats-credentials"

// Start brings up the platform; if any part fails, what started is stopped.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (_ *Stack, err error) {
	if cfg.Namespace == "" {
		cfg.Namespace = temporalx.DefaultNamespace
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data folder %s: %w", cfg.DataDir, err)
	}
	s := &Stack{cfg: cfg}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.lock, err = lockDir(cfg.DataDir); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, func() { _ = s.lock.Close() })

	// Every service connects as its own NATS user (natsauth.Table); the
	// credentials are generated once and kept in the data folder.
	if s.creds, err = natsauth.Ensure(filepath.Join(cfg.DataDir, CredentialsDir)); err != nil {
		return nil, err
	}
	s.nats, err = natsembed.Start(natsembed.Options{
		Host: cfg.Host, Port: cfg.NATSPort, PortFlag: cfg.NATSPortFlag, StoreDir: filepath.Join(cfg.DataDir, "nats"),
		Users: s.creds, ExtraUsers: cfg.ExtraNATSUsers,
	}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, s.nats.Stop)
	if err := s.provision(ctx, log); err != nil {
		return nil, err
	}

	s.temporal, err = temporalembed.Start(temporalembed.Options{
		Host: cfg.Host, Port: cfg.TemporalPort, HTTPPort: cfg.TemporalHTTPPort,
		PortFlag: cfg.TemporalPortFlag, HTTPPortFlag: cfg.TemporalHTTPPortFlag,
		DatabaseFile:     filepath.Join(cfg.DataDir, "temporal.db"),
		Namespace:        cfg.Namespace,
		SearchAttributes: temporalx.SearchAttributes(),
		LogLevel:         cfg.TemporalLogLevel,
	}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, func() {
		if err := s.temporal.Stop(); err != nil {
			log.Warn("temporal stop", zap.Error(err))
		}
	})

	// A data folder made before an attribute existed gets it now.
	tc, err := temporalx.Dial(ctx, s.TemporalAddress(), cfg.Namespace, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
	if err != nil {
		return nil, err
	}
	added, err := temporalx.AddMissingSearchAttributes(ctx, tc, cfg.Namespace)
	tc.Close()
	if err != nil {
		return nil, err
	}
	if added > 0 { // until the server's cache refreshes itself (a minute)
		s.temporal.RefreshSearchAttributesFor(2 * time.Minute)
	}

	if !cfg.NoUI {
		if s.ui, err = temporalembed.StartUI(cfg.Host, cfg.UIPort, cfg.UIPortFlag, s.TemporalAddress(), cfg.Namespace); err != nil {
			return nil, err
		}
		s.stops = append(s.stops, s.ui.Stop)
	}

	// The domain services answer over NATS; the worker's activities call them.
	ro, err := roster.Start(ctx, s.NATSURLFor(natsauth.Roster), true, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, ro.Stop)
	fu, err := funding.Start(ctx, s.NATSURLFor(natsauth.Funding), nil, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, fu.Stop)

	w, err := worker.Start(ctx, worker.Config{NATSURL: s.NATSURLFor(natsauth.Worker), TemporalAddress: s.TemporalAddress(), Namespace: cfg.Namespace}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, w.Stop)

	el, err := eventlog.Start(ctx, s.NATSURLFor(natsauth.EventLog), log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, el.Stop)

	auditKey, err := audit.LoadSigningKey("") // DEMARCHE_AUDIT_SIGNING_KEY(_FILE); none: unsigned heads
	if err != nil {
		return nil, err
	}
	au, err := audit.Start(ctx, audit.Config{NATSURL: s.NATSURLFor(natsauth.Audit), SigningKey: auditKey}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, au.Stop)

	sig, err := partners.DialSignaller(ctx, s.TemporalAddress(), cfg.Namespace, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, sig.Close)
	ps, err := partners.Start(ctx, partners.Config{NATSURL: s.NATSURLFor(natsauth.Partners)}, sig, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, ps.Stop)

	ew, err := earlywarning.StartWithTemporal(ctx, earlywarning.Config{NATSURL: s.NATSURLFor(natsauth.EarlyWarning)}, s.TemporalAddress(), cfg.Namespace, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, ew.Stop)

	sc, err := contract.Start(ctx, s.NATSURLFor(natsauth.Schema), log) // demarche.schema.get, demarche.schema.asyncapi
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, sc.Stop)

	// The dev issuer stands in for the organisation's identity provider: its
	// key and the demo identities' tokens live in the data folder.
	if s.issuer, err = authn.LoadOrCreateIssuer(s.AuthDir()); err != nil {
		return nil, err
	}
	if s.tokens, err = authn.WriteDevTokens(s.AuthDir(), s.issuer); err != nil {
		return nil, err
	}
	s.gateway, err = gateway.Start(ctx, gateway.Config{Host: cfg.Host, Port: cfg.HTTPPort, PortFlag: cfg.HTTPPortFlag,
		NATSURL: s.NATSURLFor(natsauth.Gateway), TemporalAddress: s.TemporalAddress(), Namespace: cfg.Namespace, Verifier: s.issuer.Verifier(),
		DevAuthDir: s.AuthDir()}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, s.gateway.Stop)

	var stop func()
	if s.metrics, stop, err = metrics.Serve(cfg.MetricsAddr, false); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, stop)
	if s.pprof, stop, err = metrics.Serve(cfg.PprofAddr, true); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, stop)
	return s, nil
}

// MetricsURL is the base URL of /metrics ("" when off).
func (s *Stack) MetricsURL() string { return s.metrics }

// PprofURL is the base URL of /debug/pprof/ ("" when off).
func (s *Stack) PprofURL() string { return s.pprof }

// NATSURL is the embedded NATS server's client URL, without credentials:
// it refuses connections that bring none.
func (s *Stack) NATSURL() string { return s.nats.URL() }

// NATSURLFor is the NATS URL with an identity's credentials in it.
func (s *Stack) NATSURLFor(id natsauth.Identity) string {
	u, err := s.creds[id].URL(s.nats.URL())
	if err != nil {
		panic(err) // the server's own URL always parses
	}
	return u
}

// CredentialsFile is the file holding an identity's NATS credentials.
func (s *Stack) CredentialsFile(id natsauth.Identity) string {
	return natsauth.FileName(filepath.Join(s.cfg.DataDir, CredentialsDir), id)
}

// Resources are every stream and bucket of the platform.
func Resources() natsx.Resources {
	return eventbus.Resources(eventbus.StreamOptions{}).Merge(
		earlywarning.Resources(0), funding.Resources(), roster.Resources(), audit.Resources(),
		partners.Resources(eventbus.StreamOptions{}))
}

// provision creates or updates every stream and bucket as the provisioning
// identity, the only one allowed to.
func (s *Stack) provision(ctx context.Context, log *zap.Logger) error {
	nc, js, err := natsx.Connect(s.NATSURLFor(natsauth.Provisioner), "demarche-provisioner", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	return natsx.Provision(ctx, js, Resources())
}

// TemporalAddress is the embedded Temporal frontend's host:port.
func (s *Stack) TemporalAddress() string { return s.temporal.HostPort() }

// TemporalHTTPPort is the embedded Temporal frontend's HTTP API port.
func (s *Stack) TemporalHTTPPort() int { return s.temporal.HTTPPort() }

// AuthDir holds the dev issuer's key and the demo identities' tokens.
func (s *Stack) AuthDir() string { return filepath.Join(s.cfg.DataDir, "auth") }

// TokenFile is the token file of a demo identity ("duty", "approver", ...).
func (s *Stack) TokenFile(identity string) string { return s.tokens[identity] }

// Issuer mints tokens the gateway accepts (tests mint their own identities).
func (s *Stack) Issuer() *authn.Issuer { return s.issuer }

// APIURL is the HTTP API's address.
func (s *Stack) APIURL() string { return s.gateway.URL() }

// UIURL is the Temporal Web UI's address ("" when off).
func (s *Stack) UIURL() string {
	if s.ui == nil {
		return ""
	}
	return s.ui.URL()
}

// Namespace is the Temporal namespace crises run in.
func (s *Stack) Namespace() string { return s.cfg.Namespace }

// DataDir is where NATS and Temporal keep their files.
func (s *Stack) DataDir() string { return s.cfg.DataDir }

// Stop stops every part, last started first. Data stays in the data folder.
func (s *Stack) Stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

// lockDir takes an exclusive lock on the data folder, so two stacks never
// share one SQLite file and one JetStream store.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data folder %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%w: %s (stop the other one, or choose another folder with --data-dir)", ErrDataDirLocked, dir)
	}
	return f, nil
}
