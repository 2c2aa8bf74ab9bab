// Package earlywarning is the early-warning service. It pools signals from
// partners' early-warning systems (CloudEvents on demarche.signals.<source>,
// stream DEMARCHE_SIGNALS), from operators and from conflict-event files
// (ACLED, UCDP GED: one file per format, see format.go) through its NATS
// micro endpoints; drops duplicates (same source + source id, durably) and
// takes a changed signal under the same id as its revision; keeps every
// accepted signal in a store analysts query (signalstore.go);
// scores each situation (country + crisis type) over a rolling window in
// event time; and when a live signal takes a situation's score across its
// region's threshold, publishes WarningRaised and opens or signals the
// situation's crisis episode with Temporal's signal-with-start (see
// CrisisOpener).
//
// # Rules
//
// Classification (crisis type and weight of an ACLED or UCDP event), window,
// decay, live horizon, thresholds per region and the confidentiality and
// sharing of automatic crises come from a versioned rules file (rules.go,
// rules/default.yaml embedded). The rules version is recorded with every
// signal, score, point of a score's history and warning, so an explanation
// can be reproduced. Rules applied on the running platform (ApplyRules, the
// EARLYWARNING_RULES bucket, rulesreload.go) replace the file without a
// restart: every instance swaps to them whole, every live situation is
// re-scored under them (a crossing they cause raises its warning), and the
// change is recorded on the audit trail.
//
// # Scoring
//
// A situation's score is the sum of the (decayed) weights of its signals
// observed within the window before its newest signal: the window is measured
// in event time, so a historic file scores as it would have live. Signals are
// applied in event-time order: an import sorts its file first (eventorder.go,
// bounded memory), and each batch is applied per situation in event time.
//
// # Live versus historical
//
// A signal observed longer ago than the horizon (default: the window) before
// now is historical: recorded and scored, but it never opens or signals a
// crisis. The first live signal that finds (or takes) the situation at or
// above its threshold is a crossing.
//
// # Situations as episodes
//
// A crossing goes to the situation's current crisis while it is open; else
// to an open real crisis of the same country and type however it was opened
// (a manual one); else it opens a new episode: a crisis id in the normal
// style (GN-20261128-K7Q3P) reserved once per situation and episode number in
// the situations bucket (the first writer wins, so concurrent instances and
// retries open one crisis), linked to the previous episode. Signals accepted
// while the situation stays above its threshold are attached to the current
// crisis as warnings (one call per situation per ingest batch, carrying the
// heaviest signal; an import's are counted instead and told in one summary
// warning when it finishes: importsummary.go); a closed crisis is never reopened by them, and never takes
// one: when attaching finds the crisis closed while the situation stays above
// its threshold (the ordinary case when the window and the live horizon are
// the same), the batch is planned again, and a live signal that raises the
// score by the rules' new_episode_margin × threshold over its lowest since
// the closure (or over the score the crisis last saw) opens the next episode
// as a crossing would. Ingest learns of a closure from the refused attachment
// (signal-with-start on a closed crisis), so no extra round trip is paid
// while the crisis is open; Score asks Temporal when the situation is above.
//
// # Bounds
//
// The window, horizon, half-life, thresholds and new-episode margin are held
// to stated ranges (bounds.go), in a rules file and in Config (the serve
// flags) alike.
//
// # Exercises
//
// An exercise's signals (IngestExercise) are de-duplicated and scored in the
// exercise's own situations, are never historical, and raise drill crises.
//
// # Who sent a signal
//
// A signal's source is the credential that sent it, never its body. On the
// stream, NATS permissions let a source's user (demarche-signals-<source>)
// publish on demarche.signals.<source> alone, so the subject is the proof:
// the source is taken from it, and a signal whose body names another source
// is refused (dead-lettered on demarche.dlq.earlywarning-signals with the
// rule, counted in demarche_signals_refused_total{via="stream"}). The
// operator identity publishes on demarche.signals.operator only: its signals
// are the operator's. By request (the ingest endpoint, which only the gateway
// may call), a live signal is a person's: the gateway stamps it with the
// authenticated principal's source (demarchev1.PersonSource, person_<subject>)
// and refuses a body that claims another (4xx naming the rule); early warning
// refuses any other source on that path. De-duplication keys on that
// authenticated source, so a signal claiming another source's id can never
// shadow the genuine one. Publishers send no Nats-Msg-Id (the stream's
// de-duplication is one per stream, not per source, and a forged id would
// shadow a genuine one): early warning de-duplicates on source + source id
// itself. An exercise's signals (a historical file replayed as a drill) keep
// the file's sources: they are scored in the exercise's own situations and
// open drill crises only.
//
// A signal's weight is its sender's (above 0, at most 100): with the source
// authenticated, a sender weighs only its own signals and answers for them.
//
// # Durability
//
// Four JetStream key-value buckets hold the state (the third,
// EARLYWARNING_RULES, the rules applied since start-up: rulesreload.go; the
// fourth, EARLYWARNING_SIGNAL_STORE, every accepted signal with its
// revisions: signalstore.go): EARLYWARNING_SIGNALS has one
// key per signal ever seen (source + source id), created with Create so that
// only one ingest of a signal wins, even across processes and restarts;
// EARLYWARNING_SITUATIONS has one key per situation with the signals in its
// window, written with compare-and-set, and the episode reservations. Side
// effects (WarningRaised, OpenOrSignal) happen before the situation is written
// and are idempotent (deterministic event ids, reserved crisis ids), so a
// crash or a conflict repeats them at worst, and never loses a crossing.
// A fourth, EARLYWARNING_DIALOGUES, keeps each situation's early-warning
// dialogues with regional organisations (dialogues.go).
// The situations changed by the stream's signals are written behind
// (writebehind.go): held in the process, written every FlushInterval, each
// message acknowledged only once its situation is written, so a crash
// replays the unwritten tail, which the situations' windows recognise.
package earlywarning

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/metrics"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/tracing"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Names on NATS.
const (
	// ServiceName is the micro service's name (`nats micro info earlywarning`).
	ServiceName    = natsrpc.EarlyWarningService
	ServiceVersion = "1.0.0"
	// Group prefixes the request subjects (natsrpc.EarlyWarningIngest and
	// natsrpc.EarlyWarningScore).
	Group           = natsrpc.EarlyWarningGroup
	SignalsStream   = "DEMARCHE_SIGNALS"
	SignalsRoot     = "demarche.signals"
	SignalsDurable  = "earlywarning-signals"
	SignalsBucket   = "EARLYWARNING_SIGNALS"
	SituationBucket = "EARLYWARNING_SITUATIONS"
	// RulesBucket holds the rules applied on the running platform: key
	// RulesKey, RulesHistory versions kept (rulesreload.go).
	RulesBucket = "EARLYWARNING_RULES"
	// EventSource is the ce-source of the events this service publishes.
	EventSource = "/demarche/services/earlywarning"
)

// signalsAckWait is how long a stream signal may stay unacknowledged before
// it is redelivered (the write-behind flush acknowledges it well before; a
// crash test makes it short).
var signalsAckWait = 30 * time.Second

// SignalsDuplicateWindow is the signals stream's de-duplication window:
// JetStream's smallest (it cannot be off).
const SignalsDuplicateWindow = 100 * time.Millisecond

// Defaults.
const (
	DefaultWindow    = 14 * 24 * time.Hour
	DefaultThreshold = 25.0
	DefaultMaxFuture = time.Hour
	// DefaultNewEpisodeMargin is the rules' new_episode_margin when they give
	// none: after a closure above the threshold, a rise of a quarter of the
	// threshold opens the next episode (one more event of the kind that
	// crossed), not any trickle.
	DefaultNewEpisodeMargin = 0.25
	DefaultWorkers          = 4
	// SignalBatch is the most signals of the stream handled at once: each
	// situation of a batch is read (when not held here) and written once.
	SignalBatch = 1024
)

// Sentinel errors callers match with errors.Is, also across NATS (natsrpc.Call).
var (
	// ErrUnavailable is returned when NATS or the crisis opener failed; the
	// signal can be resent (errs.ErrUnavailable: 503).
	ErrUnavailable = errs.Sentinel("early warning temporarily unavailable", errs.ErrUnavailable)
	// ErrNoSituation is returned by Score when no signal was ever accepted for
	// the situation (errs.ErrNotFound: 404).
	ErrNoSituation = errs.Sentinel("no signals for this situation", errs.ErrNotFound)
	// ErrForeignSource matches the refusal of a signal whose body names a
	// source other than the credential that sent it (errs.ErrForbidden: 403).
	ErrForeignSource = errs.Sentinel("signal refused: a signal's source is the credential that sent it, never its body", errs.ErrForbidden)
)

// CrisisOpener opens a situation's crisis with a warning attached, or attaches
// the warning when the crisis is already open (Temporal signal-with-start in
// production: see TemporalOpener). It must be safe for concurrent use and
// idempotent per crisis id.
type CrisisOpener interface {
	// OpenOrSignal opens the crisis or attaches the warning to it; a crisis
	// that ran once and closed is refused with ErrCrisisClosed.
	OpenOrSignal(ctx context.Context, in *demarchev1.CrisisWorkflowInput, w *demarchev1.Warning) error
	// IsOpen says whether the crisis is running.
	IsOpen(ctx context.Context, crisisID string) (bool, error)
	// FindOpen names an open real (not drill) crisis of the country and
	// crisis type, however it was opened ("" when none).
	FindOpen(ctx context.Context, country string, t demarchev1.CrisisType) (string, error)
}

// Config configures the service. The zero value (plus NATSURL) uses the defaults.
type Config struct {
	NATSURL string
	// Rules are the scoring rules (window, decay, horizon, thresholds, crisis
	// defaults); default the embedded ones. The fields below override them.
	Rules *Rules
	// Window is the rolling scoring window in event time (default: the rules', 14 days).
	Window time.Duration
	// Horizon: signals observed longer ago than this (relative to now) are
	// historical: scored, but never opening or signalling a live crisis
	// (default: the rules', which default to the window).
	Horizon time.Duration
	// DefaultThreshold applies to regions without their own (default: the rules', 25).
	DefaultThreshold float64
	// Thresholds per region override the rules' and DefaultThreshold.
	Thresholds map[demarchev1.Region]float64
	// Confidentiality of the crises this service opens, overriding the rules'
	// per region and type (default: the rules'; restricted when none matches).
	Confidentiality demarchev1.Confidentiality
	// MaxFuture rejects signals observed further in the future (default 1h: clock skew).
	MaxFuture time.Duration
	// Workers is how many micro service instances (one queue group) answer
	// requests, so how many requests are served at once (default 4).
	Workers int
	// Replicas of the signals stream and the buckets (default 1).
	Replicas int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// FlushInterval is the longest the situations changed by the stream's
	// signals stay unwritten, their messages unacknowledged (write-behind:
	// default FlushInterval).
	FlushInterval time.Duration
	// RecordRulesChange records applied rules on the audit trail (tests);
	// default: the audit service's rules-changed endpoint.
	RecordRulesChange func(context.Context, *demarchev1.RulesChanged) error
	// Scorecard judges the rules in force as forecasts for the console's
	// scorecard page (scorecard.go); nil: the page is unavailable.
	Scorecard ScorecardFunc
}

func (c *Config) defaults() {
	if c.Rules == nil {
		c.Rules = DefaultRules()
	}
	if c.Window <= 0 {
		c.Window = c.Rules.Window
	}
	if c.Horizon <= 0 {
		c.Horizon = c.Rules.Horizon // 0 when the rules leave it to the window
	}
	if c.Horizon <= 0 {
		c.Horizon = c.Window
	}
	if c.DefaultThreshold <= 0 {
		c.DefaultThreshold = c.Rules.DefaultThreshold
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = DefaultMaxFuture
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = FlushInterval
	}
}

// Threshold is the threshold of a country's region.
func (c Config) Threshold(country string) float64 {
	region, _ := demarchev1.RegionOf(country)
	if t, ok := c.Thresholds[region]; ok && t > 0 {
		return t
	}
	if c.Rules != nil {
		if t, ok := c.Rules.Thresholds[region]; ok && t > 0 {
			return t
		}
	}
	return c.DefaultThreshold
}

// Service is the running early-warning service.
type Service struct {
	// base is the configuration as started (the flags, the --rules file);
	// conf is the one in force: base, or rules applied since (rulesreload.go),
	// swapped whole so that a batch is planned under one version.
	base       Config
	conf       atomic.Pointer[Config]
	rules      jetstream.KeyValue // EARLYWARNING_RULES: the applied rules, versioned
	rulesMu    sync.Mutex         // one adoption of applied rules at a time
	swapMu     sync.Mutex         // conf never goes back to an older revision
	swapRev    uint64
	lastChange *demarchev1.RulesChanged
	log        *zap.Logger
	opener     CrisisOpener
	openIdx    atomic.Pointer[openIndex] // the open crises of each situation, from the crisis stream (openindex.go)
	nc         *nats.Conn
	js         jetstream.JetStream
	pub        *eventbus.Publisher
	seen       jetstream.KeyValue
	situations jetstream.KeyValue
	store      jetstream.KeyValue // EARLYWARNING_SIGNAL_STORE: every accepted signal (signalstore.go)
	micro      *natsrpc.Server    // refuses requests while stopping, waits for those in hand
	cards      scorecardCache     // the rules' last scorecard (scorecard.go)
	consumer   *eventbus.Consumer
	closers    []func()
	// EARLYWARNING_DIALOGUES: dialogues with regional organisations (dialogues.go)
	dialogues jetstream.KeyValue

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	cache situationCache
	// flushInterval is how often the situations the stream's signals changed
	// are written (FlushInterval; tests make it long); stopFlush ends the
	// flusher after a last flush.
	flushInterval time.Duration
	stopFlush     func()
}

// Start connects to NATS, creates the signals stream and the buckets when
// missing, starts consuming partners' signals and answers requests.
func Start(ctx context.Context, cfg Config, opener CrisisOpener, log *zap.Logger) (_ *Service, err error) {
	if opener == nil {
		return nil, errors.New("earlywarning: a crisis opener is required")
	}
	base := cfg // the flags as given: zero values come from whichever rules are in force
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	base.Rules = cfg.Rules
	log = log.Named("earlywarning")
	nc, js, err := natsx.Connect(cfg.NATSURL, "demarche-earlywarning", log)
	if err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	s := &Service{base: base, log: log, opener: opener, nc: nc, js: js, locks: map[string]*sync.Mutex{},
		pub: eventbus.NewPublisher(js, EventSource), flushInterval: cfg.FlushInterval}
	s.conf.Store(&cfg)
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamOptions{Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	res := Resources(cfg.Replicas)
	if err := natsx.Bind(ctx, js, natsx.Resources{Streams: res.Streams}); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	if s.seen, err = natsx.KeyValue(ctx, js, res.Buckets[0]); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	if s.situations, err = natsx.KeyValue(ctx, js, res.Buckets[1]); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	if s.rules, err = natsx.KeyValue(ctx, js, res.Buckets[2]); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	if s.store, err = natsx.KeyValue(ctx, js, res.Buckets[3]); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	if err := s.bindDialogues(ctx, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	// Rules applied on the running platform win over the file: the last
	// applied version is in force from the start, then every new one.
	if err := s.watchRules(ctx); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	// Situations the stream's signals changed are written behind, every
	// FlushInterval (writebehind.go); Stop writes what is left.
	s.cache.kick = make(chan struct{}, 1)
	flushStop, flushDone := make(chan struct{}), make(chan struct{})
	go s.flushLoop(flushStop, flushDone)
	s.stopFlush = func() { close(flushStop); <-flushDone }
	if err := s.startMicro(); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	// Signals are taken from the stream in batches of whatever is waiting (a
	// lone signal at once): one write per situation per batch instead of
	// several round trips per signal, the situations of a batch side by side
	// (a crossing's signal-with-start waits on Temporal, not on the other
	// situations), each situation's signals in stream order. The situation's
	// compare-and-set write stays the safety net across processes.
	if s.consumer, err = eventbus.ConsumeBatches(ctx, js, eventbus.ConsumerConfig{
		Stream: SignalsStream, Durable: SignalsDurable, FilterSubjects: []string{SignalsRoot + ".>"},
		BatchSize: SignalBatch, MaxAckPending: signalsMaxAckPending, AckWait: signalsAckWait,
	}, s.handleSignalBatch, log); err != nil {
		return nil, fmt.Errorf("earlywarning: %w", err)
	}
	c := s.config()
	log.Info("early warning ready", zap.String("ingest", natsrpc.EarlyWarningIngest), zap.String("score", natsrpc.EarlyWarningScore),
		zap.String("signals", SignalsRoot+".<source>"), zap.Duration("window", c.Window), zap.Duration("horizon", c.Horizon), zap.Float64("default_threshold", c.DefaultThreshold),
		zap.String("rules", c.Rules.Version), zap.String("rules_from", c.Rules.Name))
	return s, nil
}

// Stop stops answering and consuming, waits for the work in hand, and disconnects.
func (s *Service) Stop() {
	if s.micro != nil {
		s.micro.Stop() // refuses new requests, waits for those in hand
	}
	if s.consumer != nil {
		s.consumer.Stop()
	}
	if x := s.openIdx.Load(); x != nil {
		x.stop()
	}
	if s.stopFlush != nil {
		s.stopFlush() // what the stream's signals changed is written, their messages acknowledged
		s.stopFlush = nil
	}
	s.nc.Close()
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// EnsureSignalStream binds to the stream partners publish signals to,
// creating it only where nothing provisioned it. It is idempotent.
func EnsureSignalStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := natsx.Stream(ctx, js, Resources(replicas).Streams[0])
	return err
}

// Resources are the signal stream and the buckets of early warning, for
// the provisioning identity (the service itself only binds to them).
func Resources(replicas int) natsx.Resources {
	if replicas <= 0 {
		replicas = 1
	}
	return natsx.Resources{
		Streams: []jetstream.StreamConfig{{
			Name:        SignalsStream,
			Description: "Démarche early-warning signals (CloudEvents 1.0, binary mode, demarche.v1.Signal data), subject demarche.signals.<source>",
			Subjects:    []string{SignalsRoot + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    replicas,
			// The stream's de-duplication is per stream, not per source: a
			// source's Nats-Msg-Id could shadow another's genuine signal. Early
			// warning de-duplicates on the authenticated source + source id
			// itself; the window is JetStream's smallest.
			Duplicates: SignalsDuplicateWindow,
		}},
		Buckets: []jetstream.KeyValueConfig{{
			Bucket: SignalsBucket, Description: "Démarche early warning: every signal seen (source.id), for de-duplication",
			History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
		}, {
			Bucket: SituationBucket, Description: "Démarche early warning: each situation's signals in its window",
			History: 1, Storage: jetstream.FileStorage, Replicas: replicas, MaxValueSize: 8 << 20,
		}, {
			Bucket: RulesBucket, Description: "Démarche early warning: the rules applied on the running platform (key active), every version kept",
			History: RulesHistory, Storage: jetstream.FileStorage, Replicas: replicas, MaxValueSize: 2 << 20,
		}, storeResource(replicas), dialoguesBucket(replicas)},
	}
}

func init() { eventbus.Register(&demarchev1.Signal{}) }

// SignalSubject is where a source publishes its signals.
func SignalSubject(source string) string { return SignalsRoot + "." + source }

// PublishSignal publishes one signal as a CloudEvent on its source's subject,
// as a partner's early-warning system does (with that source's credential:
// another subject is refused by NATS, another source in the body by early
// warning). The event id is derived from source + source id; no Nats-Msg-Id
// goes with it (see "Who sent a signal"): early warning recognises a
// republished signal itself. A signal without a source id gets one
// (NewSourceID).
func PublishSignal(ctx context.Context, js jetstream.JetStream, ceSource string, sig *demarchev1.Signal) error {
	if sig.GetSourceId() == "" {
		sig.SourceId = NewSourceID()
	}
	ev := eventbus.Event{
		ID:      signalKey(sig.GetSource(), sig.GetSourceId()),
		Source:  ceSource,
		Subject: demarchev1.SituationKey(sig.GetCountryCode(), sig.GetCrisisType()),
		Time:    time.Now(),
		Data:    sig,
	}
	msg, err := eventbus.Encode(SignalSubject(sig.GetSource()), ev)
	if err != nil {
		return fmt.Errorf("publish signal: %w", err)
	}
	msg.Header.Del(nats.MsgIdHdr)
	tracing.Inject(ctx, msg.Header)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(SignalsStream)); err != nil {
		return fmt.Errorf("publish signal %s on %s: %w", ev.ID, msg.Subject, err)
	}
	return nil
}

// handleSignalBatch ingests a batch of signals from the stream: an invalid
// or refused signal is dead-lettered, a temporary failure redelivered.
func (s *Service) handleSignalBatch(ctx context.Context, batch []eventbus.Delivery) []error {
	errs := make([]error, len(batch))
	sigs := make([]*demarchev1.Signal, 0, len(batch))
	ctxs := make([]context.Context, 0, len(batch))
	at := make([]int, 0, len(batch)) // the batch index of each signal
	for i, d := range batch {
		sig, ok := d.Event.Data.(*demarchev1.Signal)
		if !ok {
			errs[i] = fmt.Errorf("%w: %s is not a signal", eventbus.ErrPermanent, d.Event.Type)
			continue
		}
		if err := stampStreamSource(sig, d.Subject); err != nil {
			metrics.SignalsRefused.WithLabelValues("stream").Inc()
			s.log.Error("ALARM", zap.String("alarm", "foreign-source"), zap.String("subject", d.Subject),
				zap.String("claimed", sig.GetSource()), zap.String("source_id", sig.GetSourceId()), zap.Error(err))
			errs[i] = fmt.Errorf("%w: %w", eventbus.ErrPermanent, err)
			continue
		}
		sigs, ctxs, at = append(sigs, sig), append(ctxs, d.Ctx), append(at, i)
	}
	if len(sigs) == 0 {
		return errs
	}
	resp := s.ingestStream(ctx, sigs, ctxs) // stream signals are never exercises
	for j, r := range resp.GetResults() {
		switch {
		case r.GetStatus() != demarchev1.IngestStatus_INGEST_STATUS_REJECTED:
			// Accepted or recognised: acknowledged once its situation is
			// written (write-behind: writebehind.go), at once if it is.
			if s.holdSettle(demarchev1.SituationKey(sigs[j].GetCountryCode(), sigs[j].GetCrisisType()), batch[at[j]].Settle) {
				errs[at[j]] = eventbus.ErrDeferred
			}
		case r.GetRetryable():
			errs[at[j]] = fmt.Errorf("%w: %s", ErrUnavailable, r.GetReason())
		default:
			errs[at[j]] = fmt.Errorf("%w: signal rejected: %s", eventbus.ErrPermanent, r.GetReason())
		}
	}
	return errs
}

// stampStreamSource sets a stream signal's source from the subject it was
// published on (demarche.signals.<source>: NATS lets only that source's
// credential publish there), refusing a body that claims another source.
func stampStreamSource(sig *demarchev1.Signal, subject string) error {
	source, ok := strings.CutPrefix(subject, SignalsRoot+".")
	if !ok || !demarchev1.IsStreamSource(source) {
		return fmt.Errorf("%w: subject %q is not %s.<source> (a source name of lower-case letters, digits and dashes)", ErrForeignSource, subject, SignalsRoot)
	}
	if claimed := sig.GetSource(); claimed != "" && claimed != source {
		return fmt.Errorf("%w: the body claims source %q, but it was published on %s, which only %q's credential may publish on",
			ErrForeignSource, claimed, subject, source)
	}
	sig.Source = source
	return nil
}

// checkRequestSources refuses, on the ingest endpoint, a live signal whose
// source is not a person's: only the gateway may call it, and it stamps each
// signal with the authenticated principal's source (a source's signals come
// on the stream, with its own credential).
func checkRequestSources(signals []*demarchev1.Signal) []string {
	var reasons []string
	for _, sig := range signals {
		if demarchev1.IsPersonSource(sig.GetSource()) {
			reasons = append(reasons, "")
			continue
		}
		reasons = append(reasons, fmt.Sprintf("%v: source %q: a signal sent by request is a person's, stamped by the gateway (%s<subject>); a source's signals come on %s.<source> with its own credential",
			ErrForeignSource, sig.GetSource(), demarchev1.PersonSourcePrefix, SignalsRoot))
	}
	return reasons
}

// ParseThresholds reads per-region thresholds written region=score, e.g.
// "africa=20", as the --region-threshold flag takes them.
func ParseThresholds(specs []string) (map[demarchev1.Region]float64, error) {
	out := map[demarchev1.Region]float64{}
	for _, spec := range specs {
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("threshold %q: write region=score, e.g. africa=20", spec)
		}
		region, err := demarchev1.ParseRegion(name)
		if err != nil {
			return nil, fmt.Errorf("threshold %q: %w", spec, err)
		}
		score, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("threshold %q: %q is not a positive number", spec, value)
		}
		if why := CheckThreshold(score); why != "" {
			return nil, fmt.Errorf("threshold %q: %s", spec, why)
		}
		if _, dup := out[region]; dup {
			return nil, fmt.Errorf("threshold %q: %s is given twice", spec, region.Slug())
		}
		out[region] = score
	}
	return out, nil
}
