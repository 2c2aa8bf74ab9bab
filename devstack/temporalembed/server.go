// Package temporalembed runs a Temporal server inside the process, on a SQLite
// file, for `demarche dev` and for integration tests. It is the only package of
// Démarche that imports the Temporal server; production uses a Temporal cluster.
package temporalembed

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
)

// Options configure the embedded server.
type Options struct {
	Host string // default 127.0.0.1
	// Port of the frontend gRPC API (what clients dial); 0 picks a free one.
	Port int
	// HTTPAPI turns the frontend's HTTP API on (off unless asked for: a
	// browser reaches an HTTP port a web page names). It is on the frontend's
	// address and authorizes like the gRPC API (the Authorization header).
	HTTPAPI bool
	// HTTPPort of the frontend HTTP API, when on; 0 picks a free one.
	HTTPPort int
	// PortFlag and HTTPPortFlag name the flags that set the ports, for errors.
	PortFlag, HTTPPortFlag string
	// DatabaseFile is the SQLite file; it is created with the schema when missing.
	DatabaseFile string
	// Postgres, when set, replaces the SQLite file: the production server
	// (demarche temporal-server). Several server processes may share it.
	Postgres *Postgres
	// HistoryShards is fixed for the life of a database (default 1 on
	// SQLite, 4 on PostgreSQL): changing it later needs a new cluster.
	HistoryShards int32
	// Namespace is created, with SearchAttributes, when missing (SQLite;
	// on PostgreSQL, `demarche admin provision` registers it).
	Namespace        string
	SearchAttributes map[string]enumspb.IndexedValueType
	// Retention of closed workflows' histories (default 30 days).
	Retention time.Duration
	// LogLevel of the server's own logs: debug, info, warn (default: the server
	// is chatty), error.
	LogLevel string
	// TLS, when set, requires mutual TLS of every client of the frontend and
	// between the server's own services: CertFile/KeyFile is the server's
	// certificate (usable for server and client authentication, naming Host),
	// CAFile the CA that signed it and every client's certificate. Without
	// TLS the server listens on a loopback address only.
	TLS temporalx.TLSFiles
	// HistoryCacheSize is how many workflows the history service keeps in
	// memory (default DefaultHistoryCacheSize).
	HistoryCacheSize int
	// Who may call the frontend (see authz.go): the hashes of the
	// identities' API keys, from CredentialsDir (demarche dev: a key per
	// identity is made there once), KeyHashesFile (production: lines
	// "<identity> <sha256 hex>"), or KeyHashes. One is required: without it
	// every caller would be refused.
	CredentialsDir string
	KeyHashesFile  string
	KeyHashes      map[string][]temporalx.KeyHash
}

// ErrNoCredentials is returned by Start when no key hash is configured.
var ErrNoCredentials = errors.New("temporal: no API key hashes configured (every caller would be refused)")

// keyHashes gathers the configured hashes.
func (o Options) keyHashes() (map[string][]temporalx.KeyHash, error) {
	out := map[string][]temporalx.KeyHash{}
	for id, hs := range o.KeyHashes {
		out[id] = append(out[id], hs...)
	}
	if o.CredentialsDir != "" {
		if _, err := temporalx.EnsureKeys(o.CredentialsDir); err != nil {
			return nil, err
		}
		// The file EnsureKeys wrote: every current key, and a key being
		// rotated out (temporalx.RotateKey) until it is retired.
		hs, err := temporalx.LoadKeyHashes(filepath.Join(o.CredentialsDir, temporalx.KeyHashesFile))
		if err != nil {
			return nil, err
		}
		for id, h := range hs {
			out[id] = append(out[id], h...)
		}
	}
	if o.KeyHashesFile != "" {
		hs, err := temporalx.LoadKeyHashes(o.KeyHashesFile)
		if err != nil {
			return nil, err
		}
		for id, h := range hs {
			out[id] = append(out[id], h...)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoCredentials
	}
	return out, nil
}

// DefaultHistoryCacheSize bounds the workflows the embedded history service
// keeps in memory. Measured with 3,000 waiting crises (demarche bench
// capacity, after they settled): 200 KB of resident memory per crisis with
// the server's default (128,000), 157 KB with 1,000.
const DefaultHistoryCacheSize = 1000

// ErrNotLoopback refuses a plaintext server on an address other machines reach.
var ErrNotLoopback = errors.New("temporal: a frontend without mTLS listens on a loopback address only")

// pickInternalPort chooses the internal services' ports (a seam for the test
// of a port taken between the pick and the bind).
var pickInternalPort = defaultPickInternalPort

var defaultPickInternalPort = ports.Free

// ErrStart is returned when the server gave up while starting (what it
// would otherwise have ended the process for).
var ErrStart = errors.New("temporal: the server could not start")

// Server is a running embedded Temporal server.
type Server struct {
	srv      temporal.Server
	dyn      *dynConfig
	hostPort string
	httpPort int
	// hostCheck fronts a plaintext HTTP API.
	hostCheck *httpHostCheck
}

const clusterName = "active"

// serverServices are the services an embedded server runs: the default ones
// and the internal frontend, through which the server's own system workers
// (scheduler, batcher, ...) call it with the server's claims, while every
// other caller goes through the authorizing frontend.
var serverServices = append(slices.Clone(temporal.DefaultServices), string(primitives.InternalFrontendService))

// Start creates the database when needed and starts every Temporal service.
func Start(opts Options, log *zap.Logger) (_ *Server, err error) {
	// The server logs what it cannot survive (a listener it cannot bind,
	// say) at Fatal, which would end the whole process: a Fatal during the
	// start panics instead and comes back here as an error.
	// The server only calls Fatal when its logger is enabled at that level
	// (a no-op logger is not, and the server then goes on with a nil
	// listener): a discarding core keeps Fatal enabled whatever log is.
	log = log.WithOptions(zap.WithFatalHook(panicWithFields{}), zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{}), zapcore.AddSync(io.Discard), zapcore.FatalLevel))
	}))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrStart, r)
		}
	}()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if ip := net.ParseIP(opts.Host); !opts.TLS.Enabled() && opts.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%w (asked for %s): use 127.0.0.1, or configure TLS files", ErrNotLoopback, opts.Host)
	}
	if err := opts.TLS.Check(); err != nil {
		return nil, fmt.Errorf("temporal: %w", err)
	}
	if opts.Postgres == nil && opts.Namespace == "" {
		return nil, errors.New("temporal: a namespace is required")
	}
	if opts.Postgres == nil && opts.DatabaseFile == "" {
		return nil, errors.New("temporal: a database file is required")
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	level, err := zapcore.ParseLevel(opts.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("temporal: log level %q: allowed debug, info, warn, error", opts.LogLevel)
	}
	if opts.Port, err = ports.CheckOrPick(opts.Host, opts.Port, opts.PortFlag); err != nil {
		return nil, fmt.Errorf("temporal frontend: %w", err)
	}
	if !opts.HTTPAPI {
		opts.HTTPPort = 0 // the server starts no HTTP API on port 0
	} else if opts.HTTPPort, err = ports.CheckOrPick(opts.Host, opts.HTTPPort, opts.HTTPPortFlag); err != nil {
		return nil, fmt.Errorf("temporal frontend HTTP: %w", err)
	}
	hashes, err := opts.keyHashes()
	if err != nil {
		return nil, err
	}
	// A plaintext HTTP API (loopback) is served behind a Host check: a web
	// page whose name a rebinding DNS points at 127.0.0.1 is refused before
	// Temporal sees it (the API keys already refuse it a second time).
	var hostCheck *httpHostCheck
	if opts.HTTPAPI && !opts.TLS.Enabled() {
		if hostCheck, err = listenHostCheck(opts.Host, opts.HTTPPort); err != nil {
			return nil, fmt.Errorf("temporal frontend HTTP: %w", err)
		}
		defer func() {
			if err != nil {
				hostCheck.close()
			}
		}()
		if opts.HTTPPort, err = pickInternalPort(opts.Host); err != nil {
			return nil, fmt.Errorf("temporal frontend HTTP: %w", err)
		}
	}
	logger := tlog.NewZapLogger(log.Named("temporal-server").WithOptions(zap.IncreaseLevel(level)))
	var stores map[string]config.DataStore
	if opts.Postgres != nil {
		pg := *opts.Postgres
		pg.defaults()
		store, visibility, err := preparePostgres(pg, logger)
		if err != nil {
			return nil, err
		}
		stores = map[string]config.DataStore{"default": {SQL: store}, "visibility": {SQL: visibility}}
		if opts.HistoryShards == 0 {
			opts.HistoryShards = 4
		}
	} else {
		sqlConf, err := prepareDatabase(opts)
		if err != nil {
			return nil, err
		}
		// One store for both: SQLite is one file on one connection.
		stores = map[string]config.DataStore{"default": {SQL: sqlConf}}
		if opts.HistoryShards == 0 {
			opts.HistoryShards = 1
		}
	}
	conf, err := serverConfig(opts, stores)
	if err != nil {
		return nil, err
	}
	var claimMapper authorization.ClaimMapper = keyClaimMapper{hashes: hashes}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range conf.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(net.JoinHostPort(opts.Host, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	dyn := &dynConfig{static: dynamicconfig.StaticClient{
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// A refusal names the identity, the API and the rule (authz.go),
		// rather than a bare "Request unauthorized".
		dynamicconfig.ExposeAuthorizerErrors.Key(): true,
		// The history records which identity terminated or reset a crisis.
		dynamicconfig.EnablePrincipalPropagation.Key(): true,
	}}
	if opts.HistoryCacheSize == 0 {
		opts.HistoryCacheSize = DefaultHistoryCacheSize
	}
	// The history service keeps every workflow it touched in memory, up to
	// 128,000 by default: sized for a server of its own, not for one process
	// that also runs NATS and the worker. A crisis that waits beyond the
	// cache is read back from the database when something happens to it.
	dyn.static[dynamicconfig.HistoryCacheHostLevelMaxSize.Key()] = opts.HistoryCacheSize
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(serverServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(keyAuthorizer{}),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal: build server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("temporal: start server: %w", err)
	}
	out := &Server{srv: srv, dyn: dyn, hostPort: net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), httpPort: opts.HTTPPort}
	if hostCheck != nil {
		hostCheck.serve(net.JoinHostPort(opts.Host, strconv.Itoa(opts.HTTPPort)))
		out.httpPort, out.hostCheck = hostCheck.port, hostCheck
	}
	return out, nil
}

// dynConfig is the server's dynamic configuration: static values, and the
// search-attribute cache refresh, which RefreshSearchAttributesFor turns on
// for a while.
//
// Forcing that refresh on every read costs 1-4 ms per listed crisis on SQLite
// (every row of a visibility listing re-reads the namespace's attributes). It
// is only needed while attributes were just added to a data folder made
// before they existed: the attributes a new data folder is created with are
// in the cache from the start, and the cache refreshes itself every minute.
type dynConfig struct {
	static  dynamicconfig.StaticClient
	forceSA atomic.Bool
}

func (d *dynConfig) GetValue(key dynamicconfig.Key) []dynamicconfig.ConstrainedValue {
	if key == dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key() {
		return []dynamicconfig.ConstrainedValue{{Value: d.forceSA.Load()}}
	}
	return d.static.GetValue(key)
}

// RefreshSearchAttributesFor makes every read see the namespace's search
// attributes fresh from the database for d (call it after adding attributes:
// the server's own cache refreshes every minute).
func (s *Server) RefreshSearchAttributesFor(d time.Duration) {
	s.dyn.forceSA.Store(true)
	time.AfterFunc(d, func() { s.dyn.forceSA.Store(false) })
}

// HostPort is the frontend address clients dial.
func (s *Server) HostPort() string { return s.hostPort }

// HTTPPort is the frontend HTTP API port (0: the HTTP API is off).
func (s *Server) HTTPPort() int { return s.httpPort }

// Stop stops every service.
func (s *Server) Stop() error {
	if s.hostCheck != nil {
		s.hostCheck.close()
	}
	return s.srv.Stop()
}

func prepareDatabase(opts Options) (*config.SQL, error) {
	conf := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: opts.DatabaseFile,
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// WAL: writers do not block readers.
			"journal_mode": "wal",
			// NORMAL (with WAL): a commit is durable against a crash of this
			// process, and fsyncs at checkpoints rather than at every commit;
			// a power cut can lose the last commits, never corrupt the file.
			// That is the guarantee JetStream's default sync interval gives the
			// events beside it; production runs Temporal on PostgreSQL or
			// Cassandra. FULL would fsync every commit (docs/performance.md
			// has the measurement).
			"synchronous":  "normal",
			"busy_timeout": "10000",
		},
		// One connection. Four were tried (WAL lets readers run beside the
		// writer), but transactions that read then write fail with
		// SQLITE_BUSY_SNAPSHOT when another commit came in between: ~900
		// "database is locked" errors and their retries in one bench run.
	}
	if _, err := os.Stat(opts.DatabaseFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(opts.DatabaseFile), 0o755); err != nil {
			return nil, fmt.Errorf("temporal: create data folder: %w", err)
		}
		if err := sqliteschema.SetupSchema(conf); err != nil {
			_ = os.Remove(opts.DatabaseFile) // already failing: the schema error is the one to report
			return nil, fmt.Errorf("temporal: set up schema in %s: %w", opts.DatabaseFile, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("temporal: database file: %w", err)
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("temporal: namespace %s: %w", opts.Namespace, err)
	}
	retention := opts.Retention
	if retention == 0 {
		retention = 30 * 24 * time.Hour
	}
	ns.Detail.Config.Retention = durationpb.New(retention)
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("temporal: create namespace %s: %w", opts.Namespace, err)
	}
	return conf, nil
}

func serverConfig(opts Options, stores map[string]config.DataStore) (*config.Config, error) {
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = opts.Host
	conf.Persistence.DefaultStore = "default"
	conf.Persistence.VisibilityStore = "visibility"
	if _, ok := stores["visibility"]; !ok {
		conf.Persistence.VisibilityStore = "default"
	}
	conf.Persistence.NumHistoryShards = opts.HistoryShards
	conf.Persistence.DataStores = stores
	frontend := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontend,
				HTTPAddress:            httpAddress(opts),
				// Fixed, so the cluster keeps its identity across restarts.
				ClusterID: "6d2f1a4e-3c1b-4f7e-9a55-0de7a2c0b001",
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range serverServices {
		var svc config.Service
		svc.RPC.BindOnIP = opts.Host
		if name == string(primitives.FrontendService) {
			svc.RPC.GRPCPort = opts.Port
			svc.RPC.HTTPPort = opts.HTTPPort
		} else {
			// Internal services get free ports on every start; nothing outside dials them.
			p, err := pickInternalPort(opts.Host)
			if err != nil {
				return nil, fmt.Errorf("temporal %s: %w", name, err)
			}
			svc.RPC.GRPCPort = p
		}
		conf.Services[name] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	// No public client: with an internal frontend the server's own
	// clients dial it (its address comes from the static hosts).
	if f := opts.TLS; f.Enabled() {
		server := config.ServerTLS{CertFile: f.CertFile, KeyFile: f.KeyFile, ClientCAFiles: []string{f.CAFile}, RequireClientAuth: true}
		client := config.ClientTLS{ServerName: opts.Host, RootCAFiles: []string{f.CAFile}}
		if f.ServerName != "" {
			client.ServerName = f.ServerName
		}
		group := config.GroupTLS{Server: server, Client: client}
		conf.Global.TLS = config.RootTLS{
			Internode: group, Frontend: group,
			SystemWorker: config.WorkerTLS{CertFile: f.CertFile, KeyFile: f.KeyFile, Client: client},
		}
	}
	return &conf, nil
}

func httpAddress(opts Options) string {
	if opts.HTTPPort == 0 {
		return ""
	}
	return net.JoinHostPort(opts.Host, strconv.Itoa(opts.HTTPPort))
}

// panicWithFields turns the server's Fatal into a panic whose value carries
// the message and its fields (the address a listener could not bind, say).
type panicWithFields struct{}

func (panicWithFields) OnWrite(ce *zapcore.CheckedEntry, fields []zapcore.Field) {
	enc := zapcore.NewMapObjectEncoder()
	parts := []string{}
	for _, f := range fields {
		f.AddTo(enc)
		if v, ok := enc.Fields[f.Key]; ok && f.Key != "logging-call-at" {
			parts = append(parts, fmt.Sprintf("%s=%v", f.Key, v))
		}
	}
	sort.Strings(parts)
	panic(fmt.Sprintf("%s (%s)", ce.Message, strings.Join(parts, ", ")))
}

// httpHostCheck fronts the frontend's plaintext HTTP API: it answers only
// requests whose Host is its own address (127.0.0.1, localhost or [::1] on
// its port) and whose Origin, if any, is one of those, and forwards them.
type httpHostCheck struct {
	ln   net.Listener
	srv  *http.Server
	port int
}

func listenHostCheck(host string, port int) (*httpHostCheck, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	return &httpHostCheck{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}, nil
}

// ErrHostRefused names the refusal of a request for another host.
const ErrHostRefused = "temporal HTTP API: host not served here"

func (h *httpHostCheck) serve(target string) {
	allowed := map[string]bool{}
	for _, name := range []string{"127.0.0.1", "localhost", "[::1]"} {
		allowed[name+":"+strconv.Itoa(h.port)] = true
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	h.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if !allowed[strings.ToLower(r.Host)] || (origin != "" && !allowed[strings.TrimPrefix(strings.ToLower(origin), "http://")]) {
			http.Error(w, fmt.Sprintf("%s (Host %q, Origin %q)", ErrHostRefused, r.Host, origin), http.StatusMisdirectedRequest)
			return
		}
		// Temporal reads the host it answers for from here, not from the caller.
		r.Header.Del("X-Forwarded-Host")
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = h.srv.Serve(h.ln) }() // Serve returns when Close is called; a failed listener shows as failed requests
}

func (h *httpHostCheck) close() {
	if h.srv != nil {
		_ = h.srv.Close() // stopping: nothing to do about a close error
		return
	}
	_ = h.ln.Close() // stopping: nothing to do about a close error
}
