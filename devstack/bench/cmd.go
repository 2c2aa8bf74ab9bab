package bench

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/demarche/demarche/services/cli"
)

// NewCmd is the `demarche bench` command.
func NewCmd(app *cli.App) *cobra.Command {
	var (
		size, out, dataDir       string
		natsCreds, temporalCreds string
		profile                  bool
		only, servicePprof       []string
		servicePIDs              []string
		s                        = Full()
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the platform (embedded, or a deployment) against bare Temporal and JetStream baselines on the same servers",
		Long: `Start the embedded stack in a fresh data folder, or reach a deployment
(--nats-url and --temporal-address), and run the scenarios, each beside its
bare baseline on the same servers in the same run:

  stack              time until ready, idle memory
  decide             a triage decision (update) at each --concurrency, vs a trivial update
  open               opening crises until CrisisOpened is on NATS, vs a one-activity workflow
  ingest             signals below the threshold, spread over every situation and as a
                     flare on a few, vs bare JetStream publish → consume
  warning-to-action  crossings at each --rates per second across distinct situations,
                     signal published → CrisisOpened on NATS of the crisis (episode)
                     its WarningRaised names, vs bare publish → consume; then the
                     rate a bare one-activity workflow sustains at a steady offered
                     rate (up to --keep-up-rate), and crossings at that rate, judged
                     on keeping up (≥ 0.9× done, drained ≤ 2 s after the last signal)
  fanout             K durable subscribers of crisis events, vs K bare consumers
  drills             --drills drills at once, vs one drill alone (what the delays allow)
  replay             every history of the drills replayed, vs decoding them
  capacity           crises waiting, opened up to each --capacity size: memory and disk
                     per crisis, time to list them all
  import             a generated --import-row ACLED file imported live (crossing, opening
                     crises) vs the same file dated three years back (historical);
                     embedded stack only

It prints progress while running, then a table with ratios, and writes
bench.json (every figure, the machine, the commit) and bench.svg (latency
distributions) and bench.md (the table in Markdown) into --out. Logs of the stack go to --out/bench.log.

Against a deployment (a cluster: make bench-cluster starts one on this
machine), give its NATS seed list and Temporal frontend, and the credentials
of the identities the bench acts as: --nats-credentials, a folder holding
operator.creds (it publishes signals and watches events), worker.creds (it
publishes the fan-out's crisis events) and bench.creds (the bare baselines);
--temporal-credentials, a folder holding gateway.key (it opens and decides
crises) and admin.key (the baseline workflows, on a queue of their own) —
the folders "demarche admin credentials --dir secrets" writes (secrets and
secrets/temporal-credentials). TLS as every command: --nats-ca, --nats-cert,
--nats-key, --temporal-tls-*; a payload codec with --codec-key or
--codec-keyring. The stack scenario (start-up, idle memory) and the
capacity scenario's memory and disk per crisis are the embedded stack's
alone. The bench opens real crises there (operator-opened, drills, crossings
of fresh situations): run it on a deployment you may fill, not on one in
service. It removes what else it made (its stream BENCH_BARE, its fan-out
consumers).

With --profile, each scenario writes a CPU profile of the bench's own process
(<scenario>.cpu.pprof: with the embedded stack, every service is in it).
Against a deployment the services run in processes of their own: start them
with --pprof-listen (demarche serve, demarche temporal-server; keep it on a
private address) and name each with --service-pprof NAME=HOST:PORT; the bench
reads their /debug/pprof/profile in consecutive 5 s chunks while a scenario
runs and writes <scenario>.<NAME>.cpu.pprof (a process out of reach is a note
in the output, not a failure). Without --profile, --service-pprof does nothing.`,
		Example: "  demarche bench\n  demarche bench --only decide,open --decisions 50\n  demarche bench --capacity 1000,5000,20000\n  demarche bench --size tiny\n" +
			"  demarche bench --nats-url nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 --nats-credentials secrets \\\n" +
			"    --temporal-address temporal:7233 --temporal-credentials secrets/temporal-credentials \\\n" +
			"    --nats-ca secrets/nats-tls/ca.pem --nats-cert secrets/nats-tls/bench.pem --nats-key secrets/nats-tls/bench-key.pem \\\n" +
			"    --temporal-tls-ca secrets/temporal-tls/ca.pem --temporal-tls-cert secrets/temporal-tls/admin.pem --temporal-tls-key secrets/temporal-tls/admin-key.pem\n" +
			"  demarche bench --nats-url nats://127.0.0.1:4222 --nats-credentials secrets --temporal-address 127.0.0.1:7233 \\\n" +
			"    --temporal-credentials secrets/temporal-credentials --only open --profile \\\n" +
			"    --service-pprof worker=127.0.0.1:6061,gateway=127.0.0.1:6062 --service-pprof temporal=127.0.0.1:6070",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if size == "tiny" {
				t := Tiny()
				// Flags the user set win over the tiny sizes.
				cmd.Flags().Visit(func(f *pflag.Flag) { applyFlag(&t, s, f.Name) })
				s = t
			} else if size != "full" {
				return fmt.Errorf("--size %q: allowed full or tiny", size)
			}
			for _, o := range only {
				if !contains(Scenarios, o) {
					return fmt.Errorf("--only %q: allowed %s", o, strings.Join(Scenarios, ", "))
				}
			}
			services, err := parseServicePprof(servicePprof)
			if err != nil {
				return err
			}
			pids, err := parseServicePIDs(servicePIDs)
			if err != nil {
				return err
			}
			target, err := targetOf(cmd, app, natsCreds, temporalCreds, dataDir)
			if err != nil {
				return err
			}
			if target != nil {
				if err := target.check(); err != nil { // before anything is written
					return err
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("--out %s: %w", out, err)
			}
			logf, err := os.Create(filepath.Join(out, "bench.log"))
			if err != nil {
				return fmt.Errorf("--out %s: %w", out, err)
			}
			defer logf.Close()
			log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logf), zapcore.InfoLevel))
			// Ctrl-C stops the run; what was measured is still written.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := Run(ctx, Config{Sizes: s, Only: only, DataDir: dataDir, Progress: cmd.ErrOrStderr(),
				Command: "demarche " + strings.Join(os.Args[1:], " "), ProfileDir: profileDir(profile, out), ServicePprof: services, ServicePIDs: pids, Target: target}, log)
			if err != nil {
				return err
			}
			return Write(rep, out, app.Out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&size, "size", "full", "full (make bench) or tiny (the harness check of make test)")
	f.StringSliceVar(&only, "only", nil, "run only these scenarios (comma-separated): "+strings.Join(Scenarios[1:], ", "))
	f.StringVar(&out, "out", "bench-results", "folder for bench.json, bench.svg and bench.log")
	f.StringVar(&dataDir, "data-dir", "", "data folder of the stack under test, new or empty (default: a temporary one, removed after)")
	f.StringVar(&natsCreds, "nats-credentials", "", "against a deployment: folder of NATS credentials holding operator.creds, worker.creds and bench.creds (demarche admin credentials --dir)")
	f.StringVar(&temporalCreds, "temporal-credentials", "", "against a deployment: folder of Temporal API keys holding gateway.key and admin.key (<dir>/temporal-credentials of demarche admin credentials)")
	f.BoolVar(&profile, "profile", false, "write a CPU profile of each scenario into --out (<scenario>.cpu.pprof; go tool pprof reads it)")
	f.StringSliceVar(&servicePprof, "service-pprof", nil, "with --profile: NAME=HOST:PORT of a deployment's process serving /debug/pprof/ (its --pprof-listen), profiled per scenario into <scenario>.<NAME>.cpu.pprof; repeatable or comma-separated, e.g. worker=127.0.0.1:6061")
	f.StringSliceVar(&servicePIDs, "service-pid", nil, "NAME=PID of a deployment's process on this machine: decide, open and warning-to-action report its CPU milliseconds per operation (with its child processes', e.g. PostgreSQL's connections) beside the bench's own, in bench.json (cpu_ms_per_op) and a table; repeatable or comma-separated, e.g. postgres=4242")
	f.IntVar(&s.Decisions, "decisions", s.Decisions, "decisions per concurrency level")
	f.IntSliceVar(&s.Concurrency, "concurrency", s.Concurrency, "decide: concurrency levels")
	f.IntVar(&s.Opens, "opens", s.Opens, "crises opened by the open scenario")
	f.IntVar(&s.Ingest, "ingest", s.Ingest, "signals below the threshold")
	f.IntVar(&s.Import, "import", s.Import, "import: rows of the generated file")
	f.IntSliceVar(&s.Rates, "rates", s.Rates, "warning-to-action: crossings per second")
	f.Float64Var(&s.RateSeconds, "rate-seconds", s.RateSeconds, "warning-to-action: seconds at each rate")
	f.IntVar(&s.KeepUpRate, "keep-up-rate", s.KeepUpRate, "warning-to-action: crossings per second it must keep up with, or the rate the bare one-activity workflow sustains if lower")
	f.IntVar(&s.FanoutSubscribers, "subscribers", s.FanoutSubscribers, "fanout: durable subscribers")
	f.IntVar(&s.FanoutEvents, "fanout-events", s.FanoutEvents, "fanout: events published")
	f.IntVar(&s.Drills, "drills", s.Drills, "drills at once")
	f.IntSliceVar(&s.Capacity, "capacity", s.Capacity, "capacity: sizes (crises waiting) to measure at")
	return cmd
}

// targetOf is the deployment the flags name, nil for the embedded stack:
// a deployment is named by --nats-url or --temporal-address on the command
// line (not by the environment, which a dev shell may set for other commands).
func targetOf(cmd *cobra.Command, app *cli.App, natsCreds, temporalCreds, dataDir string) (*Target, error) {
	fl := cmd.Flags()
	if !fl.Changed("nats-url") && !fl.Changed("temporal-address") {
		if natsCreds != "" || temporalCreds != "" {
			return nil, errors.New("--nats-credentials and --temporal-credentials are for a deployment: give its --nats-url and --temporal-address too")
		}
		return nil, nil
	}
	if !fl.Changed("nats-url") || !fl.Changed("temporal-address") {
		return nil, errors.New("a deployment needs both --nats-url and --temporal-address (without either, the bench starts the embedded stack)")
	}
	for _, name := range []string{"nats-creds", "temporal-key-file"} {
		if fl.Changed(name) {
			return nil, fmt.Errorf("--%s names one identity's credential; the bench acts as several (NATS: operator, worker, bench; Temporal: gateway, admin): give their folders with --nats-credentials and --temporal-credentials", name)
		}
	}
	if dataDir != "" {
		return nil, errors.New("--data-dir is the embedded stack's data folder: against a deployment the servers keep their own")
	}
	return &Target{NATSURL: withoutCredentials(app.NATSURL), NATSCredentials: natsCreds,
		TemporalAddress: app.TemporalAddress, Namespace: app.Namespace, TemporalCredentials: temporalCreds}, nil
}

// withoutCredentials strips user and password from each URL of a seed list
// (the root command puts a default credential in it): the report records the
// URL, and each connection of the bench puts its own identity's in.
func withoutCredentials(seeds string) string {
	var out []string
	for _, one := range strings.Split(seeds, ",") {
		one = strings.TrimSpace(one)
		if u, err := url.Parse(one); err == nil && u.Host != "" {
			u.User = nil
			one = u.String()
		}
		out = append(out, one)
	}
	return strings.Join(out, ",")
}

// applyFlag copies a sizing flag the user set from the full sizes to t.
func applyFlag(t *Sizes, s Sizes, name string) {
	switch name {
	case "decisions":
		t.Decisions = s.Decisions
	case "concurrency":
		t.Concurrency = s.Concurrency
	case "opens":
		t.Opens = s.Opens
	case "ingest":
		t.Ingest = s.Ingest
	case "import":
		t.Import = s.Import
	case "rates":
		t.Rates = s.Rates
	case "rate-seconds":
		t.RateSeconds = s.RateSeconds
	case "keep-up-rate":
		t.KeepUpRate = s.KeepUpRate
	case "subscribers":
		t.FanoutSubscribers = s.FanoutSubscribers
	case "fanout-events":
		t.FanoutEvents = s.FanoutEvents
	case "drills":
		t.Drills = s.Drills
	case "capacity":
		t.Capacity = s.Capacity
	}
}

func profileDir(on bool, out string) string {
	if on {
		return out
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Write saves bench.json and bench.svg into dir and prints the table to w.
func Write(rep *Report, dir string, w io.Writer) error {
	jf, err := os.Create(filepath.Join(dir, "bench.json"))
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(jf); err != nil {
		_ = jf.Close() // already failing: the write error is reported
		return err
	}
	if err := jf.Close(); err != nil {
		return err
	}
	sf, err := os.Create(filepath.Join(dir, "bench.svg"))
	if err != nil {
		return err
	}
	if err := rep.WriteSVG(sf); err != nil {
		_ = sf.Close() // already failing: the write error is reported
		return err
	}
	if err := sf.Close(); err != nil {
		return err
	}
	mf, err := os.Create(filepath.Join(dir, "bench.md"))
	if err != nil {
		return err
	}
	rep.WriteMarkdown(mf)
	if err := mf.Close(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rep.WriteTable(w)
	fmt.Fprintf(w, "\non %s\n%d cores, %d MB, %s, commit %.12s; %s\nwrote %s and %s\n", rep.Deployment, rep.Machine.Cores, rep.Machine.MemoryMB, rep.Machine.GoVersion,
		rep.Machine.Commit, rep.Command, filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.svg"))
	if len(rep.Failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed", len(rep.Failures))
	}
	return nil
}
