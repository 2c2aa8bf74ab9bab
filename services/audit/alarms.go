package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/metrics"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Alarms. When the audit service refuses an event, or finds a stored record
// of a chain bad, it raises an alarm at once, four ways: an error log line
// ("ALARM"), the Prometheus counter demarche_audit_alarms_total{kind} (and
// the gauge demarche_audit_isolated_chains), a demarche.v1.AuditAlarm
// message on the core NATS subject demarche.audit.alarm, and an ALARM record
// on the global chain (tamper-evident, like everything else there).
//
// A chain with a bad record is isolated: nothing more is appended to it (the
// events of its crisis still go on the global chain, each saying so), and
// every other chain carries on. Isolation is found on the next append to the
// chain, and by the watchdog, which checks every record stored on the audit
// stream as it arrives, so a record nobody but the audit service should have
// written raises the alarm within moments even when the crisis is quiet.
const (
	// SubjectAlarm is where alarms are published (core NATS; AuditAlarm, protobuf).
	SubjectAlarm = SubjectRoot + ".alarm"
	// AlarmForgedEvent: an event that is not the workflow's was refused.
	AlarmForgedEvent = "forged-event"
	// AlarmChainIsolated: a chain holds a bad record and is isolated.
	AlarmChainIsolated = "chain-isolated"
	// AlarmEventType is the event_type of ALARM records.
	AlarmEventType = "audit-alarm"
	// OperationEventType is the event_type of OPERATION records (AppendOperation).
	OperationEventType = "workflow-operation"
)

// The alarm metrics live in pkg/metrics, on the registry /metrics serves.
var (
	alarmsTotal    = metrics.AuditAlarms
	isolatedChains = metrics.AuditIsolatedChains
)

// alarms is a store's alarm state.
type alarms struct {
	mu       sync.Mutex
	isolated map[string]string // chain -> why
	nc       *nats.Conn
	log      *zap.Logger
}

func (a *alarms) reason(chain string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.isolated[chain]
}

// Isolated lists the isolated chains and why.
func (s *Store) Isolated() map[string]string {
	s.alarms.mu.Lock()
	defer s.alarms.mu.Unlock()
	out := make(map[string]string, len(s.alarms.isolated))
	for k, v := range s.alarms.isolated {
		out[k] = v
	}
	return out
}

// isolate marks a chain isolated (once) and raises the alarm.
func (s *Store) isolate(ctx context.Context, chain string, cause error) error {
	s.alarms.mu.Lock()
	_, already := s.alarms.isolated[chain]
	if !already {
		s.alarms.isolated[chain] = "isolated: " + cause.Error()
		isolatedChains.Inc()
	}
	s.alarms.mu.Unlock()
	if already {
		return nil
	}
	return s.raise(ctx, &demarchev1.AuditAlarm{Kind: AlarmChainIsolated, Chain: chain,
		CrisisId: strings.TrimPrefix(chain, crisisChainPrefix), Reason: cause.Error()})
}

// raise logs, counts, publishes and records an alarm. Only failing to record
// it (the global chain unreachable) is an error: the caller retries.
func (s *Store) raise(ctx context.Context, a *demarchev1.AuditAlarm) error {
	if a.GetChain() == GlobalChain {
		a.CrisisId = ""
	}
	a.At = timestamppb.New(s.now())
	if s.alarms.nc != nil {
		if b, err := proto.Marshal(a); err == nil {
			_ = s.alarms.nc.Publish(SubjectAlarm, b) // a notice for watchers (core NATS); the alarm itself is recorded on the chain below
		}
	}
	return s.record(ctx, a, ServiceName)
}

// AlarmLedgerBroken: the funding service found a fund's ledger broken (it
// publishes the alarm; the audit service counts and records it).
const AlarmLedgerBroken = "ledger-broken"

// reported takes an alarm another service published on SubjectAlarm: a
// broken ledger (services/funding; NATS lets only funding publish there
// besides audit) is counted, logged and recorded on the global chain as
// reported by funding; other kinds are audit's own, already recorded.
func (s *Store) reported(ctx context.Context, data []byte) {
	var a demarchev1.AuditAlarm
	if proto.Unmarshal(data, &a) != nil || a.GetKind() != AlarmLedgerBroken {
		return
	}
	a.Chain, a.CrisisId = "", ""
	if a.At == nil {
		a.At = timestamppb.New(s.now())
	}
	if err := s.record(ctx, &a, "funding"); err != nil && s.alarms.log != nil {
		s.alarms.log.Error("audit: could not record an alarm", zap.Error(err))
	}
}

// record counts, logs and records an alarm on the global chain, as reported by by.
func (s *Store) record(ctx context.Context, a *demarchev1.AuditAlarm, by string) error {
	alarmsTotal.WithLabelValues(a.GetKind()).Inc()
	if s.alarms.log != nil {
		s.alarms.log.Error("ALARM", zap.String("alarm", a.GetKind()), zap.String("chain", a.GetChain()),
			zap.String("crisis_id", a.GetCrisisId()), zap.String("event_id", a.GetEventId()), zap.String("reason", a.GetReason()),
			zap.String("reported_by", by))
	}
	if s.alarms.reason(GlobalChain) != "" {
		return nil // the global chain is itself isolated: log, metric and event only
	}
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_ALARM, Chain: GlobalChain, CrisisId: a.GetCrisisId(),
		EventId: "alarm-" + nuid.Next(), EventType: AlarmEventType, EventSource: Source, EventTime: a.GetAt(),
		Principal: by, RecordedAt: timestamppb.New(s.now()),
		Detail: fmt.Sprintf("%s: chain %q, event %q: %s", a.GetKind(), a.GetChain(), a.GetEventId(), a.GetReason()),
	}
	_, _, err := s.append(ctx, r)
	if errors.Is(err, ErrCorrupt) && a.GetChain() != GlobalChain {
		return s.isolate(ctx, GlobalChain, err)
	}
	return err
}

// watch checks every record stored on the audit stream from now on, as it
// arrives: a record that does not decode, is not its subject's chain's, is not
// what its hash says, or does not follow the record seen before it on its
// chain isolates that chain and raises the alarm.
func (s *Store) watch(ctx context.Context) (stop func(), err error) {
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectOf(GlobalChain), SubjectOf(crisisChainPrefix + "*")},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: watchdog: %w", err)
	}
	seen := map[string]*demarchev1.AuditRecord{}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		chain := strings.TrimPrefix(msg.Subject(), SubjectRoot+".")
		meta, _ := msg.Metadata() // without metadata the record is checked at stream sequence 0, which its error names
		var seq uint64
		if meta != nil {
			seq = meta.Sequence.Stream
		}
		r, err := checkStored(chain, seq, msg.Data())
		if err == nil && s.key != nil && !ed25519.Verify(s.key.Public().(ed25519.PublicKey), r.GetHash(), r.GetSignature()) {
			err = fmt.Errorf("%w: chain %s: record %d (stream sequence %d) is not signed by the audit service's key: forged", ErrCorrupt, chain, r.GetSequence(), seq)
		}
		if err == nil {
			if prev := seen[chain]; prev != nil && (r.GetSequence() != prev.GetSequence()+1 || !bytes.Equal(r.GetPrevHash(), prev.GetHash())) {
				err = fmt.Errorf("%w: chain %s: record %d (stream sequence %d) does not follow record %d: inserted, or written by someone else",
					ErrCorrupt, chain, r.GetSequence(), seq, prev.GetSequence())
			}
		}
		if err != nil {
			delete(seen, chain)
			if ierr := s.isolate(wctx, chain, err); ierr != nil && s.alarms.log != nil {
				s.alarms.log.Error("audit: could not record an alarm", zap.Error(ierr))
			}
			return
		}
		seen[chain] = r
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("audit: watchdog: %w", err)
	}
	return func() { cc.Stop(); cancel() }, nil
}
