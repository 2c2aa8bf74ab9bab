package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/health"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/pkg/tracing"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/earlywarning/evaluate"
	"github.com/demarche/demarche/services/eventlog"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/services/roster"
	"github.com/demarche/demarche/services/worker"
)

func newServeCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run one Démarche service as its own process",
		Long: `Run one service as its own process, against the NATS and Temporal given by
--nats-url and --temporal-address. "demarche dev" runs all of them in one process
with the same wiring.`,
	}
	cmd.PersistentFlags().StringVar(&app.metricsAddr, "metrics-listen", EnvOr("DEMARCHE_METRICS_LISTEN", "127.0.0.1:9464"), "serve Prometheus /metrics here (\"\" turns it off; env DEMARCHE_METRICS_LISTEN)")
	cmd.PersistentFlags().StringVar(&app.pprofAddr, "pprof-listen", os.Getenv("DEMARCHE_PPROF_LISTEN"), "serve Go's /debug/pprof/ here (off unless set; env DEMARCHE_PPROF_LISTEN)")
	cmd.PersistentFlags().StringVar(&app.otlpEndpoint, "otlp-endpoint", OTLPEndpointFromEnv(), "export traces over OTLP/gRPC to this collector, as service.name demarche-<service>: "+tracing.EndpointHelp+" (off unless set; env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)")
	cmd.PersistentFlags().StringVar(&app.healthAddr, "health-listen", os.Getenv("DEMARCHE_HEALTH_LISTEN"), "serve /healthz (live) and /readyz (ready: bound, NATS connected, Temporal answering) here (off unless set; env DEMARCHE_HEALTH_LISTEN)")
	var rosterFile string
	var seed bool
	rosterCmd := &cobra.Command{
		Use:   "roster",
		Short: "Run the roster service: envoys, mediators and standby experts (NATS micro)",
		Long: `Run the roster service with the roster of --roster FILE (YAML or JSON; see
deploy/roster.example.yaml): at each start every expert listed is stored as the
file says, and an expert no longer listed is kept (bookings name it) but marked
unavailable. A bad file is refused with the line, the expert and the field.
The demo roster is for demarche dev only.`,
		Example: "  demarche serve roster --roster /etc/demarche/roster.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seed {
				return errors.New("--seed is gone: the demo roster is for demarche dev only; give the service your roster with --roster FILE (see deploy/roster.example.yaml)")
			}
			if rosterFile == "" {
				return errors.New("no roster: pass --roster FILE (YAML or JSON, a list of experts; see deploy/roster.example.yaml; env DEMARCHE_ROSTER_FILE); the demo roster is for demarche dev only")
			}
			experts, err := roster.LoadRoster(rosterFile)
			if err != nil {
				return fmt.Errorf("--roster: %w", err)
			}
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				// Bookings are checked against the crises' workflows, read
				// through Temporal as the roster identity.
				s, err := roster.StartWith(ctx, roster.Config{NATSURL: app.NATSURL, Experts: experts, TemporalAddress: app.TemporalAddress, Namespace: app.Namespace}, app.Log)
				if err != nil {
					return nil, err
				}
				return s.Stop, nil
			})
		},
	}
	rosterCmd.Flags().StringVar(&rosterFile, "roster", EnvOr("DEMARCHE_ROSTER_FILE", ""), "the roster file, YAML or JSON (required; env DEMARCHE_ROSTER_FILE)")
	rosterCmd.Flags().BoolVar(&seed, "seed", false, "gone: the demo roster is for demarche dev only")
	_ = rosterCmd.Flags().MarkHidden("seed") // the flag is defined on the line above: this fails only for an unknown flag
	cmd.AddCommand(
		rosterCmd,
		newServePartnersCmd(app),
		newServeAuditCmd(app),
		newServeEarlyWarningCmd(app),
		newServeGatewayCmd(app),
		newServeSchemaCmd(app),
		newServeFundingCmd(app),
		&cobra.Command{
			Use:   "worker",
			Short: "Run the Temporal worker: crisis workflows and their activities",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
					s, err := worker.Start(ctx, worker.Config{NATSURL: app.NATSURL, TemporalAddress: app.TemporalAddress, Namespace: app.Namespace}, app.Log)
					if err != nil {
						return nil, err
					}
					return s.Stop, nil
				})
			},
		},
		&cobra.Command{
			Use:   "eventlog",
			Short: "Run the event log: one structured log line per crisis event",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
					s, err := eventlog.Start(ctx, app.NATSURL, app.Log)
					if err != nil {
						return nil, err
					}
					return s.Stop, nil
				})
			},
		},
	)
	// Each service's readiness knows its name (which engines it needs).
	for _, c := range cmd.Commands() {
		if run := c.RunE; run != nil {
			c.RunE = func(cc *cobra.Command, args []string) error {
				app.serving = cc.Name()
				return run(cc, args)
			}
		}
	}
	return cmd
}

// usesTemporal are the services that are not ready while Temporal does not answer.
var usesTemporal = map[string]bool{"worker": true, "gateway": true, "earlywarning": true, "partners": true, "funding": true, "roster": true}

// serveUntilSignal starts a service and stops it on Ctrl-C or SIGTERM.
//
// Stopping is graceful: /readyz turns 503 first, then the service stops
// taking work and finishes what it took (the gateway finishes in-flight
// requests, the Temporal worker stops polling and lets running activity
// attempts end, NATS subscriptions are drained) before the connections
// close. What was acknowledged stays done; what was not is retried by its
// sender (JetStream redelivers unacknowledged events, clients retry requests
// under their idempotency keys).
func serveUntilSignal(ctx context.Context, app *App, start func(context.Context) (func(), error)) error {
	ctx, cancel := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	hs, err := health.Serve(app.healthAddr)
	if err != nil {
		return fmt.Errorf("--health-listen: %w", err)
	}
	defer hs.Close()
	_, stopMetrics, err := metrics.Serve(app.metricsAddr, false)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	defer stopMetrics()
	_, stopPprof, err := metrics.Serve(app.pprofAddr, true)
	if err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	defer stopPprof()
	exp, err := tracing.Export(ctx, app.otlpEndpoint, app.serving)
	if err != nil {
		return fmt.Errorf("--otlp-endpoint: %w", err)
	}
	defer flushTraces(exp, app.Log)
	stop, err := startRetrying(ctx, app, start)
	if err != nil {
		return err
	}
	if hs != nil {
		closeChecks, err := app.readinessChecks(ctx, hs)
		if err != nil {
			stop()
			return err
		}
		defer closeChecks()
	}
	hs.Started()
	app.Log.Info("ready", zap.String("service", app.serving), zap.String("health", hs.URL()))
	<-ctx.Done()
	hs.Stopping()
	app.Log.Info("stopping", zap.String("reason", "signal"))
	stop()
	app.Log.Info("stopped")
	return nil
}

// flushTraces sends the spans still buffered when a process stops.
func flushTraces(exp *tracing.Exporter, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := exp.Shutdown(ctx); err != nil {
		log.Warn("traces not all exported", zap.Error(err))
	}
}

// OTLPEndpointFromEnv is the default of --otlp-endpoint: the standard
// OpenTelemetry variables, the traces' own first.
func OTLPEndpointFromEnv() string {
	return EnvOr("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

// startRetryFor bounds how long a service keeps retrying a start that failed
// for a passing reason.
const startRetryFor = 2 * time.Minute

// startRetrying starts the service, retrying while the engines it needs are
// briefly unavailable (a JetStream cluster electing leaders after a node
// restarted, a Temporal frontend coming up): found by the cluster test,
// where funding, restarted seconds after a NATS node, timed out reading its
// ledgers and exited. /readyz says "starting" meanwhile. Any other error
// (bad flags, refused credentials, a broken ledger) stops it at once.
func startRetrying(ctx context.Context, app *App, start func(context.Context) (func(), error)) (func(), error) {
	deadline := time.Now().Add(startRetryFor)
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		stop, err := start(ctx)
		if err == nil || !transient(err) || time.Now().Add(wait).After(deadline) {
			return stop, err
		}
		app.Log.Warn("start failed for a passing reason; retrying", zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// transient: an engine did not answer in time, or answered that it is not
// available yet.
func transient(err error) bool {
	return errors.Is(err, errs.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// readinessChecks watch the engines the service needs, each over its own
// connection with the service's identity: a NATS connection that is up (the
// client reconnects through the cluster's seed list), and, for the services
// that drive or signal workflows, a Temporal frontend that answers.
func (app *App) readinessChecks(ctx context.Context, hs *health.Server) (func(), error) {
	nc, _, err := natsx.Connect(app.NATSURL, "demarche-"+app.serving+"-readiness", app.Log)
	if err != nil {
		return nil, err
	}
	hs.Add("nats", func(context.Context) string {
		if nc.IsConnected() {
			return ""
		}
		return "not connected (" + nc.Status().String() + ")"
	})
	closers := []func(){nc.Close}
	if usesTemporal[app.serving] {
		var mu sync.Mutex
		var tc client.Client
		hs.Add("temporal", func(ctx context.Context) string {
			mu.Lock()
			defer mu.Unlock()
			if tc == nil {
				c, err := temporalx.Dial(ctx, app.TemporalAddress, app.Namespace, app.Log.WithOptions(zap.IncreaseLevel(zap.ErrorLevel)), temporalx.As(app.serving))
				if err != nil {
					return err.Error()
				}
				tc = c
			}
			if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
				return "frontend " + app.TemporalAddress + " does not answer: " + err.Error()
			}
			return ""
		})
		closers = append(closers, func() {
			mu.Lock()
			defer mu.Unlock()
			if tc != nil {
				tc.Close()
			}
		})
	}
	return func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

func newServeEarlyWarningCmd(app *App) *cobra.Command {
	var cfg earlywarning.Config
	var regionThresholds []string
	var confidentiality, rulesPath string
	cmd := &cobra.Command{
		Use:   "earlywarning",
		Short: "Run early warning: ingest signals, score situations, open crises on threshold crossings",
		Long: `Run early warning. Its rules (classification, window, decay, live horizon,
thresholds per region, confidentiality and sharing of the crises it opens) come
from --rules (default: the embedded rules, see demarche warning rules show); the
flags below override the rules' values when given. Rules applied on the running
platform (demarche warning rules apply, the head of department) replace both
--rules and the scoring flags (--window, --horizon, --threshold,
--region-threshold) at once, without a restart, and stay in force after one
(the EARLYWARNING_RULES bucket); --rules and the flags run until rules are
first applied. To go back to a file, apply it.`,
		Example: "  demarche serve earlywarning --rules ew-rules.yaml\n  demarche serve earlywarning --threshold 25 --region-threshold africa=20 --window 336h --horizon 72h",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Rules, err = earlywarning.LoadRules(rulesPath); err != nil {
				return fmt.Errorf("--rules: %w", err)
			}
			if cfg.Thresholds, err = earlywarning.ParseThresholds(regionThresholds); err != nil {
				return fmt.Errorf("--region-threshold: %w", err)
			}
			if confidentiality != "" {
				if cfg.Confidentiality, err = demarchev1.ParseConfidentiality(confidentiality); err != nil {
					return fmt.Errorf("--confidentiality: %s", reasonOf(err))
				}
			}
			cfg.NATSURL = app.NATSURL
			cfg.Scorecard = evaluate.ConsoleScorecard // the console's scorecard page
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				s, err := earlywarning.StartWithTemporal(ctx, cfg, app.TemporalAddress, app.Namespace, app.Log)
				if err != nil {
					return nil, err
				}
				return s.Stop, nil
			})
		},
	}
	cmd.Flags().StringVar(&rulesPath, "rules", "", "rules file (default: the embedded rules); rules applied with warning rules apply take precedence")
	cmd.Flags().DurationVar(&cfg.Window, "window", 0, "rolling scoring window, in event time (default: the rules', 336h)")
	cmd.Flags().DurationVar(&cfg.Horizon, "horizon", 0, "signals older than this are historical: scored, never opening a live crisis (default: the window)")
	cmd.Flags().Float64Var(&cfg.DefaultThreshold, "threshold", 0, "score at which a situation raises a warning (default: the rules', 25)")
	cmd.Flags().StringArrayVar(&regionThresholds, "region-threshold", nil, "a region's own threshold, region=score (repeatable)")
	cmd.Flags().StringVar(&confidentiality, "confidentiality", "", "confidentiality of the crises it opens, for every region and type: public, restricted, confidential (default: the rules')")
	return cmd
}

func newServeGatewayCmd(app *App) *cobra.Command {
	cfg := gateway.Config{PortFlag: "--port"}
	var issuer, audience, devIssuer string
	var console gateway.ConsoleOIDC
	var consoleSecretFile, auditPublicKey, roleWebhooks string
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the HTTP API: open and read crises, record decisions, take signals",
		Long: `Run the HTTP API, Démarche's one door for people and partner systems. Every
request needs a bearer token from the organisation's OpenID Connect issuer
(--oidc-issuer; tokens must carry the audience --oidc-audience, a "roles" claim
with Démarche role slugs, a "clearance" claim and, for partners, a "partner"
claim), or, on a development machine, from a demarche dev data folder's issuer
(--dev-issuer DATA/auth).

With --console-client-id and --console-redirect-url, people sign in to the
console at the same issuer (authorization code + PKCE). Register the console
as a client whose redirect URL is this gateway's /console/oidc/callback; the
issuer's access tokens must be JWTs for --oidc-audience with the same claims
(or the client id must be that audience, and the ID token carry the claims).

With a payload codec key (--codec-key), the gateway reads encrypted crises
and serves Temporal's remote codec protocol at /v1/codec/NAMESPACE (decode,
encode) to auditors with confidential clearance: point the Temporal UI's codec
endpoint there, either with passAccessToken (a UI signed in at the same issuer,
whose access tokens are for --oidc-audience) or with includeCredentials (the
console's session cookie; --codec-origin the UI's origin, same site).`,
		Example: `  demarche serve gateway --oidc-issuer https://login.example.org/realms/ops
  demarche serve gateway --oidc-issuer https://login.example.org/realms/ops \
    --console-client-id demarche-console --console-client-secret-file /run/secrets/console \
    --console-redirect-url https://ops.example.org/console/oidc/callback
  demarche serve gateway --dev-issuer .demarche/auth`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.NATSURL, cfg.TemporalAddress, cfg.Namespace = app.NATSURL, app.TemporalAddress, app.Namespace
			if auditPublicKey != "" {
				k, err := audit.ParsePublicKey(auditPublicKey)
				if err != nil {
					return fmt.Errorf("--audit-public-key: %s", reasonOf(err))
				}
				cfg.AuditPublicKey = k
			}
			if roleWebhooks != "" {
				hooks, err := gateway.LoadRoleWebhooks(roleWebhooks)
				if err != nil {
					return fmt.Errorf("--role-webhooks: %w", err)
				}
				cfg.RoleWebhooks = hooks
			}
			switch {
			case issuer != "" && devIssuer != "":
				return fmt.Errorf("--oidc-issuer and --dev-issuer exclude each other")
			case issuer != "":
				v, err := authn.NewOIDC(cmd.Context(), issuer, audience)
				if err != nil {
					return fmt.Errorf("--oidc-issuer: %w", err)
				}
				cfg.Verifier = v
			case devIssuer != "":
				iss, err := authn.LoadOrCreateIssuer(devIssuer)
				if err != nil {
					return fmt.Errorf("--dev-issuer: %w", err)
				}
				cfg.Verifier = iss.Verifier()
			default:
				return fmt.Errorf("say who issues the tokens: --oidc-issuer URL (env DEMARCHE_OIDC_ISSUER) or, on a development machine, --dev-issuer DIR")
			}
			if console.ClientID != "" || console.RedirectURL != "" {
				if issuer == "" {
					return fmt.Errorf("--console-client-id needs --oidc-issuer: the console signs in at the issuer whose tokens the API accepts")
				}
				if console.ClientID == "" || console.RedirectURL == "" {
					return fmt.Errorf("console sign-in needs both --console-client-id and --console-redirect-url")
				}
				if consoleSecretFile != "" {
					b, err := os.ReadFile(consoleSecretFile)
					if err != nil {
						return fmt.Errorf("--console-client-secret-file: %w", err)
					}
					console.ClientSecret = strings.TrimSpace(string(b))
				}
				console.Issuer = issuer
				cfg.ConsoleOIDC = &console
			}
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				s, err := gateway.Start(ctx, cfg, app.Log)
				if err != nil {
					return nil, err
				}
				return s.Stop, nil
			})
		},
	}
	cmd.Flags().StringVar(&cfg.Host, "host", "127.0.0.1", "address to listen on")
	cmd.Flags().IntVar(&cfg.Port, "port", 8080, "port to listen on")
	cmd.Flags().StringVar(&cfg.PublicURL, "public-url", EnvOr("DEMARCHE_PUBLIC_URL", ""), "the address people use, e.g. https://ops.example.org: the gateway answers to its host (and to 127.0.0.1/localhost on --port) only, and takes browser forms from that origin only (DNS rebinding) (env DEMARCHE_PUBLIC_URL)")
	cmd.Flags().StringVar(&issuer, "oidc-issuer", EnvOr("DEMARCHE_OIDC_ISSUER", ""), "OpenID Connect issuer URL whose tokens are accepted (env DEMARCHE_OIDC_ISSUER)")
	cmd.Flags().StringVar(&audience, "oidc-audience", EnvOr("DEMARCHE_OIDC_AUDIENCE", authn.Audience), "audience the tokens must carry (env DEMARCHE_OIDC_AUDIENCE)")
	cmd.Flags().StringVar(&devIssuer, "dev-issuer", "", "development only: accept the tokens of a demarche dev data folder's issuer (DATA/auth)")
	cmd.Flags().StringVar(&console.ClientID, "console-client-id", EnvOr("DEMARCHE_CONSOLE_CLIENT_ID", ""), "the console's client id at the OIDC issuer: people sign in there (authorization code + PKCE) (env DEMARCHE_CONSOLE_CLIENT_ID)")
	cmd.Flags().StringVar(&consoleSecretFile, "console-client-secret-file", EnvOr("DEMARCHE_CONSOLE_CLIENT_SECRET_FILE", ""), "file holding the console's client secret (optional: a public client relies on PKCE) (env DEMARCHE_CONSOLE_CLIENT_SECRET_FILE)")
	cmd.Flags().StringVar(&console.RedirectURL, "console-redirect-url", EnvOr("DEMARCHE_CONSOLE_REDIRECT_URL", ""), "this gateway's callback as registered at the issuer, https://HOST/console/oidc/callback (env DEMARCHE_CONSOLE_REDIRECT_URL)")
	cmd.Flags().StringSliceVar(&console.Scopes, "console-scopes", []string{"profile", "email"}, "scopes the console asks for besides openid")
	cmd.Flags().StringVar(&cfg.TemporalUIURL, "temporal-ui-url", EnvOr("DEMARCHE_TEMPORAL_UI_URL", ""), "the Temporal UI's address, e.g. https://temporal-ui.example.org: the console's auditor page links each crisis there (env DEMARCHE_TEMPORAL_UI_URL; empty: no link)")
	cmd.Flags().StringVar(&auditPublicKey, "audit-public-key", EnvOr(audit.EnvPublicKey, ""), "base64 ed25519 public key of the audit service: the auditor's page and runs verify chains against it (env "+audit.EnvPublicKey+")")
	cmd.Flags().StringVar(&roleWebhooks, "role-webhooks", EnvOr("DEMARCHE_ROLE_WEBHOOKS", ""), "JSON file of role webhooks: a new crisis, a decision or approval waiting for the role, a deadline at risk or breached, POSTed signed to each role's URL (docs/operations-centre.md; env DEMARCHE_ROLE_WEBHOOKS)")
	cmd.Flags().DurationVar(&cfg.ClaimTTL, "claim-ttl", 0, "how long a person's claim on a pending decision holds unless released or renewed (default 30m)")
	cmd.Flags().StringSliceVar(&cfg.CodecOrigins, "codec-origin", splitList(os.Getenv("DEMARCHE_CODEC_ORIGINS")), "browser origin allowed to call the codec endpoint /v1/codec/NAMESPACE/decode with a console session: the Temporal UI's, e.g. https://temporal-ui.example.org (repeatable; env DEMARCHE_CODEC_ORIGINS)")
	return cmd
}

func newServeFundingCmd(app *App) *cobra.Command {
	var fundsFile string
	var open bool
	var openedBy string
	cmd := &cobra.Command{
		Use:   "funding",
		Short: "Run the funding service: funds, four-eyes decisions, exactly-once disbursements (NATS micro)",
		Long: `Run the funding service with the funds of --funds FILE (YAML or JSON; see
deploy/funds.example.yaml; a bad file is refused with the line, the fund and
the field). Each fund's ledger is hash-linked and checked on every read: a
broken ledger is refused with the line where it breaks. It acts only on
decisions it finds in the crises' workflows (read through Temporal at
--temporal-address as the funding identity).

The service never opens a fund. Opening one is an explicit act, recorded on
the audit chain: demarche admin open-fund, before the service starts. A
configured fund without a ledger (never opened, or opened before and its
ledger gone) stops the start: the service refuses to start, says which fund
and what to do, and raises the alarm (ALARM log line,
demarche_funding_ledger_alarms_total, demarche.audit.alarm).`,
		Example: "  demarche admin open-fund --funds /etc/demarche/funds.yaml --all --reason \"first deployment\" --nats-creds provisioner.creds\n  demarche serve funding --funds /etc/demarche/funds.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if open || openedBy != "" {
				return errors.New("--open-funds is gone: the service never opens a fund; open each with demarche admin open-fund (an audited act), then start the service")
			}
			if fundsFile == "" {
				return errors.New("no funds: pass --funds FILE (YAML or JSON, a list of funds; see deploy/funds.example.yaml; env DEMARCHE_FUNDS_FILE) and open each fund with demarche admin open-fund; the demo funds are for demarche dev only")
			}
			funds, err := funding.LoadFunds(fundsFile)
			if err != nil {
				return fmt.Errorf("--funds: %w", err)
			}
			return serveUntilSignal(cmd.Context(), app, func(ctx context.Context) (func(), error) {
				// Payments are checked against the crises' workflows, read
				// through Temporal as the funding identity.
				s, err := funding.StartWith(ctx, funding.Config{NATSURL: app.NATSURL, Funds: funds,
					TemporalAddress: app.TemporalAddress, Namespace: app.Namespace}, app.Log)
				if err != nil {
					return nil, err
				}
				return s.Stop, nil
			})
		},
	}
	cmd.Flags().StringVar(&fundsFile, "funds", EnvOr("DEMARCHE_FUNDS_FILE", ""), "the funds file, YAML or JSON (required; env DEMARCHE_FUNDS_FILE)")
	cmd.Flags().BoolVar(&open, "open-funds", false, "gone: open funds with demarche admin open-fund")
	cmd.Flags().StringVar(&openedBy, "opened-by", "", "gone: open funds with demarche admin open-fund")
	_ = cmd.Flags().MarkHidden("open-funds") // the flags are defined above: this fails only for an unknown flag
	_ = cmd.Flags().MarkHidden("opened-by")  // the flags are defined above: this fails only for an unknown flag
	return cmd
}
