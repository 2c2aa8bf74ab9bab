// Package stack runs the whole platform in one process for `demarche dev` and
// for integration tests: embedded NATS with JetStream, an embedded Temporal
// server on SQLite, and every service, wired exactly as in production (over
// NATS and Temporal, by address).
package stack

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/pkg/tracing"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/contract"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/earlywarning/evaluate"
	"github.com/demarche/demarche/services/eventlog"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/services/platform"
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
	// TemporalHTTP turns the embedded Temporal frontend's HTTP API on
	// (loopback only, same authorizer as gRPC); off unless asked for.
	TemporalHTTP bool
	Namespace    string
	// Flag names, for errors about taken ports.
	NATSPortFlag, TemporalPortFlag, TemporalHTTPPortFlag string
	// TemporalLogLevel is the embedded Temporal server's log level (default warn).
	TemporalLogLevel string
	// HTTPPort serves the HTTP API (0: a free port).
	HTTPPort int
	// PublicURL is the gateway's address for people when it is not
	// 127.0.0.1/localhost on HTTPPort (gateway.Config.PublicURL).
	PublicURL    string
	HTTPPortFlag string
	// UIPort serves the Temporal Web UI (0: a free port); NoUI turns it off.
	UIPort     int
	UIPortFlag string
	NoUI       bool
	// EarlyWarning configures early warning (rules, window, horizon, ...);
	// the stack sets its NATS URL.
	EarlyWarning earlywarning.Config
	// Without names services this stack leaves out (Services lists them), to
	// be run as their own processes with "demarche serve NAME": the fault
	// suite kills and restarts them on their own.
	Without []string
	// NATSTLS, when set, makes the embedded NATS server accept TLS client
	// connections only; NATSTLSCA is the CA that signed its certificate,
	// which the embedded services trust (set as DEMARCHE_NATS_CA for the process).
	NATSTLS   *natsembed.TLSFiles
	NATSTLSCA string
	// ExtraNATSUsers are let into the embedded NATS server beside the
	// services' identities (demarche bench's baseline user).
	ExtraNATSUsers []*server.User
	// NATSPlaintextStore leaves JetStream's files unencrypted: only for the
	// control run of the at-rest test, which must see what a scan would find.
	NATSPlaintextStore bool
	// MetricsAddr serves Prometheus /metrics for the whole process ("": off;
	// "127.0.0.1:0": a free port). PprofAddr serves /debug/pprof/ (opt-in: "" off).
	MetricsAddr, PprofAddr string
	// Codec, when set, encrypts every payload the stack's Temporal clients
	// send (the embedded Temporal's database holds ciphertext only), and the
	// gateway's codec endpoint lets the Temporal UI decrypt them for auditors.
	Codec *payloadcodec.Keyring
	// NoDemoFunds: never open the demo funds, even on a new data folder (a
	// restore brings its funds with the backup).
	NoDemoFunds bool
	// AuditAnchorEvery is how often the audit service anchors grown chains
	// (0: audit.DefaultAnchorEvery): tests of anchoring shorten it.
	AuditAnchorEvery time.Duration
	// PartnersRegistry is a partners registry file (JSON, as
	// DEMARCHE_PARTNERS_REGISTRY) for the partners service and the partner
	// organisations' NATS users; "" is the embedded registry. Its
	// organisations must be the embedded registry's (the platform provisions
	// their streams); tests use it to give one a webhook.
	PartnersRegistry string
	// OTLPEndpoint, when set, exports the spans of every service run here
	// over OTLP/gRPC (tracing.Export: each service its own service.name,
	// demarche-<service>; the stack's own as demarche-dev), flushed when the
	// stack stops. "": no exporter.
	OTLPEndpoint string
}

// Services are the services a stack may leave out (Config.Without).
var Services = []string{"roster", "funding", "worker", "eventlog", "audit", "partners", "earlywarning", "schema"}

func (c Config) runs(service string) bool { return !slices.Contains(c.Without, service) }

// checkWithout refuses a name that is not a service a stack can leave out.
func (c Config) checkWithout() error {
	for _, name := range c.Without {
		if !slices.Contains(Services, name) {
			return fmt.Errorf("--without: %q is not a service that can run on its own (allowed: %s)", name, strings.Join(Services, ", "))
		}
	}
	return nil
}

// Stack is the running platform.
type Stack struct {
	cfg    Config
	lock   *os.File
	natsMu sync.Mutex // guards nats across RestartNATS
	nats   *natsembed.Server
	// natsStoreKey encrypts JetStream's files (kept in the data folder).
	natsStoreKey string
	temporal     *temporalembed.Server
	ui           *temporalembed.UI
	gateway      *gateway.Service
	issuer       *authn.Issuer
	tokens       map[string]string // demo identity -> token file
	creds        map[natsauth.Identity]natsauth.Credentials
	stops        []func()
	metrics      string
	pprof        string
}

// TemporalHost is where the embedded Temporal frontend, its HTTP API and the
// Temporal UI listen, whatever Config.Host says: the frontend is plaintext in
// `demarche dev` (its API keys would travel in clear), so only this machine
// reaches it (production: mTLS).
const TemporalHost = "127.0.0.1"

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
	if err := cfg.checkWithout(); err != nil {
		return nil, err
	}
	// A data folder whose engines' state this start creates (no JetStream
	// store, no Temporal database yet: `demarche dev` writes its codec key
	// there before) gets the demo funds opened, once; any other never does
	// (a restored folder, a folder whose ledger vanished: the funding service
	// refuses to start with the alarm).
	fresh := isNewDataFolder(cfg.DataDir) && !cfg.NoDemoFunds
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
	s.stops = append(s.stops, func() { _ = s.lock.Close() }) // a lock file, nothing written: the lock goes with the process anyway
	// Before any service starts (their Temporal clients take their tracer
	// when they dial); stopped after them all, so their last spans go out.
	exp, err := tracing.Export(ctx, cfg.OTLPEndpoint, "dev", append([]string{"gateway"}, Services...)...)
	if err != nil {
		return nil, fmt.Errorf("OTLP endpoint: %w", err)
	}
	s.stops = append(s.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := exp.Shutdown(ctx); err != nil {
			log.Warn("traces not all exported", zap.Error(err))
		}
	})
	if err := s.writeDemoFiles(); err != nil {
		return nil, err
	}
	if fresh {
		// Kept until the demo funds are open: a first start that fails
		// before (a port taken) leaves it, and the next start opens them.
		if err := os.WriteFile(s.fundsPendingFile(), []byte(fundsPendingText), 0o600); err != nil {
			return nil, fmt.Errorf("data folder %s: %w", cfg.DataDir, err)
		}
	}

	// Every service connects as its own NATS user (natsauth.Table); the
	// credentials are generated once and kept in the data folder.
	if cfg.NATSTLS != nil {
		if cfg.NATSTLSCA == "" {
			return nil, errors.New("NATS TLS: the CA that signed the server certificate is needed too (the embedded services must trust it)")
		}
		if err := os.Setenv(natsx.EnvCA, cfg.NATSTLSCA); err != nil {
			return nil, err
		}
	}
	// Partner organisations (the registry's) and signal sources have a user
	// each too, for their systems outside Démarche.
	registry, err := partners.LoadRegistry(cfg.PartnersRegistry)
	if err != nil {
		return nil, err
	}
	var outside []natsauth.Identity
	for _, p := range registry.Partners() {
		outside = append(outside, natsauth.PartnerIdentity(p.Name))
	}
	for _, src := range natsauth.DefaultSignalSources {
		outside = append(outside, natsauth.SignalSourceIdentity(src))
	}
	if s.creds, err = natsauth.Ensure(filepath.Join(cfg.DataDir, CredentialsDir), outside...); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, "nats"))
	newDataFolder := errors.Is(statErr, os.ErrNotExist)
	if !cfg.NATSPlaintextStore {
		if s.natsStoreKey, err = natsembed.EnsureStoreKey(filepath.Join(cfg.DataDir, natsembed.StoreKeyFile)); err != nil {
			return nil, err
		}
	}
	s.nats, err = natsembed.Start(natsembed.Options{
		Host: cfg.Host, Port: cfg.NATSPort, PortFlag: cfg.NATSPortFlag, StoreDir: filepath.Join(cfg.DataDir, "nats"),
		Users: s.creds, TLS: cfg.NATSTLS, ExtraUsers: cfg.ExtraNATSUsers, StoreKey: s.natsStoreKey,
	}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, func() { s.natsServer().Stop() })
	if err := s.provision(ctx, log); err != nil {
		if !newDataFolder && s.natsStoreKey != "" {
			// A store encrypted under another key reads as corrupt streams.
			return nil, fmt.Errorf("%w (if the streams cannot be decrypted, %s is not the key this data folder's JetStream store was encrypted with: put the right key back, or start from a new --data-dir)",
				err, filepath.Join(cfg.DataDir, natsembed.StoreKeyFile))
		}
		return nil, err
	}

	// The embedded frontend is plaintext on loopback: every client of this
	// process dials it so, whatever TLS files the environment names.
	temporalx.SetDefaultTLS(temporalx.TLSFiles{})
	// Before the server's system workers make the process's workflow cache.
	worker.LimitWorkflowCache(0)
	// Every Temporal identity has its API key in the data folder (made
	// once); the server keeps their hashes and authorizes every call.
	temporalCreds := filepath.Join(cfg.DataDir, temporalx.CredentialsDir)
	s.temporal, err = temporalembed.Start(temporalembed.Options{
		Host: TemporalHost, Port: cfg.TemporalPort, HTTPAPI: cfg.TemporalHTTP, HTTPPort: cfg.TemporalHTTPPort,
		PortFlag: cfg.TemporalPortFlag, HTTPPortFlag: cfg.TemporalHTTPPortFlag,
		CredentialsDir:   temporalCreds,
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
	// Every client of this frontend (services, tests, bench) uses the
	// stack's codec, whatever the process default.
	s.stops = append(s.stops, temporalx.SetCodecFor(s.TemporalAddress(), cfg.Codec))
	// And each dials as its identity with that identity's key.
	s.stops = append(s.stops, temporalx.SetCredentialsFor(s.TemporalAddress(), temporalCreds))

	// A data folder made before an attribute existed gets it now.
	tc, err := temporalx.Dial(ctx, s.TemporalAddress(), cfg.Namespace, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), temporalx.As(temporalx.IdentityAdmin))
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

	// The UI starts after the gateway, whose codec endpoint it uses; its
	// port is chosen now, for the gateway to let its origin in.
	var uiPort int
	var codecOrigins []string
	if !cfg.NoUI {
		if uiPort, err = ports.CheckOrPick(TemporalHost, cfg.UIPort, cfg.UIPortFlag); err != nil {
			return nil, fmt.Errorf("temporal UI: %w", err)
		}
		if cfg.Codec != nil {
			codecOrigins = []string{"http://" + net.JoinHostPort(TemporalHost, strconv.Itoa(uiPort))}
		}
	}

	// The domain services answer over NATS; the worker's activities call them.
	// Each runs here unless the configuration leaves it out (Config.Without).
	// DEMARCHE_AUDIT_SIGNING_KEY(_FILE) when set; else the data folder's own
	// key, made on first start and kept (also when audit runs on its own:
	// `serve audit` beside this data folder uses it): heads, records and
	// anchors are signed in dev too, so a well-linked forgery does not verify.
	auditKey, err := audit.LoadSigningKey("")
	if err == nil && auditKey == nil {
		auditKey, err = audit.EnsureSigningKey(s.AuditKeyFile())
	}
	if err != nil {
		return nil, err
	}

	if cfg.runs("audit") {
		au, err := audit.Start(ctx, audit.Config{NATSURL: s.NATSURLFor(natsauth.Audit), SigningKey: auditKey, AnchorFile: s.AnchorFile(),
			AnchorEvery: cfg.AuditAnchorEvery, ConsumerWatchEvery: 2 * time.Second}, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, au.Stop)
	}

	// The demo funds are opened once, on the data folder this stack
	// created, as provisioning opens funds in production (funding.OpenFund):
	// an explicit act, in each opening line and on the audit chain.
	if err := s.openDemoFunds(ctx, log); err != nil {
		return nil, err
	}

	if cfg.runs("roster") {
		// Bookings are checked against the crises' workflows (read-only client).
		ro, err := roster.StartWith(ctx, roster.Config{NATSURL: s.NATSURLFor(natsauth.Roster), Experts: roster.DemoRoster(),
			TemporalAddress: s.TemporalAddress(), Namespace: cfg.Namespace}, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, ro.Stop)
	}

	if cfg.runs("funding") {
		// Payments are checked against the crises' workflows (read-only client).
		fu, err := funding.StartWith(ctx, funding.Config{NATSURL: s.NATSURLFor(natsauth.Funding), Funds: funding.DemoFunds(),
			TemporalAddress: s.TemporalAddress(), Namespace: cfg.Namespace}, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, fu.Stop)
	}

	if cfg.runs("worker") {
		w, err := worker.Start(ctx, worker.Config{NATSURL: s.NATSURLFor(natsauth.Worker), TemporalAddress: s.TemporalAddress(), Namespace: cfg.Namespace, OutsideWatchInterval: 2 * time.Second}, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, w.Stop)
	}

	if cfg.runs("eventlog") {
		el, err := eventlog.Start(ctx, s.NATSURLFor(natsauth.EventLog), log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, el.Stop)
	}

	if cfg.runs("partners") {
		sig, err := partners.DialSignaller(ctx, s.TemporalAddress(), cfg.Namespace, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, sig.Close)
		ps, err := partners.Start(ctx, partners.Config{NATSURL: s.NATSURLFor(natsauth.Partners), Registry: registry}, sig, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, ps.Stop)
	}

	if cfg.runs("earlywarning") {
		ewCfg := cfg.EarlyWarning
		ewCfg.NATSURL = s.NATSURLFor(natsauth.EarlyWarning)
		if ewCfg.Scorecard == nil {
			ewCfg.Scorecard = evaluate.ConsoleScorecard // the console's scorecard page
		}
		ew, err := earlywarning.StartWithTemporal(ctx, ewCfg, s.TemporalAddress(), cfg.Namespace, log)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, ew.Stop)
	}

	if cfg.runs("schema") {
		sc, err := contract.Start(ctx, s.NATSURLFor(natsauth.Schema), log) // demarche.schema.get, demarche.schema.asyncapi
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, sc.Stop)
	}

	// The dev issuer stands in for the organisation's identity provider: its
	// key and the demo identities' tokens live in the data folder.
	if s.issuer, err = authn.LoadOrCreateIssuer(s.AuthDir()); err != nil {
		return nil, err
	}
	if s.tokens, err = authn.WriteDevTokens(s.AuthDir(), s.issuer); err != nil {
		return nil, err
	}
	// The auditor's page links crises to the Temporal UI, and verifies
	// chains with this stack's audit key, anchors as often as it anchors.
	uiURL := ""
	if !cfg.NoUI {
		uiURL = "http://" + net.JoinHostPort(TemporalHost, strconv.Itoa(uiPort))
	}
	anchorCover := time.Duration(0)
	if cfg.AuditAnchorEvery < 0 {
		anchorCover = -1
	} else if cfg.AuditAnchorEvery > 0 {
		anchorCover = cfg.AuditAnchorEvery + audit.DefaultAnchorGrace
	}
	s.gateway, err = gateway.Start(ctx, gateway.Config{Host: cfg.Host, Port: cfg.HTTPPort, PortFlag: cfg.HTTPPortFlag,
		NATSURL: s.NATSURLFor(natsauth.Gateway), TemporalAddress: s.TemporalAddress(), Namespace: cfg.Namespace, Verifier: s.issuer.Verifier(),
		DevAuthDir: s.AuthDir(), Codec: cfg.Codec, CodecOrigins: codecOrigins, PublicURL: cfg.PublicURL,
		TemporalUIURL: uiURL, AuditPublicKey: auditKey.Public().(ed25519.PublicKey), AuditAnchorCover: anchorCover}, log)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, s.gateway.Stop)

	if !cfg.NoUI {
		// The UI reads as the observer: the authorizer lets it list,
		// describe and read histories, nothing more.
		observerKey, err := os.ReadFile(temporalx.KeyFile(temporalCreds, temporalx.IdentityObserver))
		if err != nil {
			return nil, fmt.Errorf("temporal UI: %w", err)
		}
		uiOpts := []temporalembed.UIOption{temporalembed.WithAPIKey(strings.TrimSpace(string(observerKey)))}
		if cfg.Codec != nil {
			uiOpts = append(uiOpts, temporalembed.WithCodecEndpoint(s.CodecEndpoint()))
		}
		if s.ui, err = temporalembed.StartUI(TemporalHost, uiPort, cfg.UIPortFlag, s.TemporalAddress(), cfg.Namespace, temporalx.TLSFiles{}, uiOpts...); err != nil {
			return nil, err
		}
		s.stops = append(s.stops, s.ui.Stop)
	}

	var stop func()
	if s.metrics, stop, err = metrics.Serve(cfg.MetricsAddr, false); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, stop)
	if s.pprof, stop, err = metrics.Serve(cfg.PprofAddr, true); err != nil {
		return nil, err
	}
	s.stops = append(s.stops, stop)
	// Every service of the stack is up: the one process is ready (it has no
	// /readyz of its own; demarche_ready is what an alert reads).
	metrics.Ready.Set(1)
	s.stops = append(s.stops, func() { metrics.Ready.Set(0) })
	return s, nil
}

func (s *Stack) natsServer() *natsembed.Server {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	return s.nats
}

// RestartNATS stops the embedded NATS server, leaves it down for downtime,
// and starts it again on the same port with the same JetStream store and
// users. Services and clients reconnect by themselves; JetStream keeps what
// it had acknowledged. The fault suite uses it (demarche dev restarts NATS on
// SIGUSR1) to check that a NATS restart during a burst of events loses nothing.
func (s *Stack) RestartNATS(downtime time.Duration, log *zap.Logger) error {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	old := s.nats
	addr, ok := old.Addr().(*net.TCPAddr)
	if !ok {
		return errors.New("nats: restart: the server has no TCP address")
	}
	old.Stop()
	time.Sleep(downtime)
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port can take a moment to be free again
		var n *natsembed.Server
		n, err = natsembed.Start(natsembed.Options{
			Host: s.cfg.Host, Port: addr.Port, PortFlag: s.cfg.NATSPortFlag, StoreDir: filepath.Join(s.cfg.DataDir, "nats"),
			Users: s.creds, TLS: s.cfg.NATSTLS, ExtraUsers: s.cfg.ExtraNATSUsers, StoreKey: s.natsStoreKey,
		}, log)
		if err == nil {
			s.nats = n
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nats: restart on port %d: %w", addr.Port, err)
}

// MetricsURL is the base URL of /metrics ("" when off).
func (s *Stack) MetricsURL() string { return s.metrics }

// PprofURL is the base URL of /debug/pprof/ ("" when off).
func (s *Stack) PprofURL() string { return s.pprof }

// NATSURL is the embedded NATS server's client URL, without credentials:
// it refuses connections that bring none.
func (s *Stack) NATSURL() string { return s.natsServer().URL() }

// NATSURLFor is the NATS URL with an identity's credentials in it.
func (s *Stack) NATSURLFor(id natsauth.Identity) string {
	u, err := s.creds[id].URL(s.NATSURL())
	if err != nil {
		panic(err) // the server's own URL always parses
	}
	return u
}

// AuditKeyFile is the data folder's audit signing key (base64 ed25519 seed,
// mode 0600), made on first start unless DEMARCHE_AUDIT_SIGNING_KEY(_FILE) names one.
func (s *Stack) AuditKeyFile() string { return filepath.Join(s.cfg.DataDir, audit.DevKeyFile) }

// AuditPublicKeyFile is its public key (base64), what `audit verify` trusts.
func (s *Stack) AuditPublicKeyFile() string {
	return filepath.Join(s.cfg.DataDir, audit.DevPublicKeyFile)
}

// AnchorFile is where the audit service also writes its anchors (signed chain heads).
func (s *Stack) AnchorFile() string { return filepath.Join(s.cfg.DataDir, "audit-anchors.jsonl") }

// CredentialsFile is the file holding an identity's NATS credentials.
func (s *Stack) CredentialsFile(id natsauth.Identity) string {
	return natsauth.FileName(filepath.Join(s.cfg.DataDir, CredentialsDir), id)
}

// provision creates or updates every stream and bucket (one replica: one
// embedded server) as the provisioning identity, the only one allowed to.
func (s *Stack) provision(ctx context.Context, log *zap.Logger) error {
	nc, _, err := natsx.Connect(s.NATSURLFor(natsauth.Provisioner), "demarche-provisioner", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	_, err = platform.ProvisionNATS(ctx, nc, 1)
	return err
}

// TemporalAddress is the embedded Temporal frontend's host:port.
func (s *Stack) TemporalAddress() string { return s.temporal.HostPort() }

// TemporalKeyFile is the file holding a Temporal identity's API key
// (temporalx.Identities), e.g. the auditor's for the temporal CLI.
func (s *Stack) TemporalKeyFile(identity string) string {
	return temporalx.KeyFile(filepath.Join(s.cfg.DataDir, temporalx.CredentialsDir), identity)
}

// TemporalHTTPPort is the embedded Temporal frontend's HTTP API port (0: off).
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

// CodecEndpoint is the gateway's codec endpoint for the namespace, as a
// browser on this machine reaches it ("" without a codec).
func (s *Stack) CodecEndpoint() string {
	if s.cfg.Codec == nil {
		return ""
	}
	u := s.APIURL()
	for _, any := range []string{"0.0.0.0", "[::]"} {
		u = strings.Replace(u, "//"+any+":", "//127.0.0.1:", 1)
	}
	return u + "/v1/codec/" + s.cfg.Namespace
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
		_ = f.Close() // opened only to lock it, nothing written: the Flock error is the one to report
		return nil, fmt.Errorf("%w: %s (stop the other one, or choose another folder with --data-dir)", ErrDataDirLocked, dir)
	}
	return f, nil
}
