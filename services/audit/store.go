package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Names of the durable state and of the service.
const (
	// StreamName holds every chain, one subject per chain.
	StreamName  = "DEMARCHE_AUDIT"
	SubjectRoot = "demarche.audit"
	// Durable is the audit consumer of DEMARCHE_CRISIS.
	Durable = "audit"
	// Source is the event_source of audit-read records.
	Source = "/demarche/services/audit"

	// The micro service and its endpoints (protobuf JSON bodies, pkg/natsrpc).
	ServiceName  = "audit"
	Group        = "demarche.audit"
	SubjectChain = natsrpc.AuditChain // AuditChainRequest -> AuditChain
	// SubjectRead records a read of restricted data (AuditReadRequest).
	SubjectRead  = natsrpc.AuditRead
	SubjectHeads = natsrpc.AuditHeads // AuditHeadsRequest -> AuditHeads
	// SubjectOperation records a terminate, cancel or reset of a crisis's
	// workflow (AuditOperationRequest -> AuditOperationResponse; see AppendOperation).
	SubjectOperation = natsrpc.AuditOperation

	// DefaultPage is how many records a chain response carries when not asked.
	DefaultPage = 500
)

// SubjectOf is the stream subject of a chain.
func SubjectOf(chain string) string { return SubjectRoot + "." + chain }

// Store appends to and reads the chains.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	key    ed25519.PrivateKey
	now    func() time.Time
	// mu serialises this process's appends; other processes are kept from
	// forking a chain by expected-last-subject-sequence.
	mu sync.Mutex
	// alarms raises alarms (log, metric, event, global-chain record) and
	// keeps the chains isolated because a stored record is bad.
	alarms  alarms
	anchors anchorState
	// consumers is the consumer watchdog's memory (consumers.go).
	consumers struct {
		mu sync.Mutex
		consumerWatch
	}
}

// Resources is the audit stream, for the provisioning identity (the service
// itself only binds to it).
func Resources() natsx.Resources {
	return natsx.Resources{Streams: []jetstream.StreamConfig{{
		Name:        StreamName,
		Description: "Démarche audit chains (hash-linked records), one subject per chain: demarche.audit.global, demarche.audit.crisis.<id>",
		Subjects:    []string{SubjectOf(GlobalChain), SubjectOf(crisisChainPrefix + "*")},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  7 * 24 * time.Hour,
		DenyDelete:  true,
		DenyPurge:   true,
	}, {
		Name:        AnchorStream,
		Description: "Démarche audit anchors: signed chain heads, one subject per chain (demarche.audit.anchor.<chain>), written by the audit service alone",
		Subjects:    []string{AnchorRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  24 * time.Hour,
		DenyDelete:  true,
		DenyPurge:   true,
	}}}
}

// OpenStore opens the audit stream (creating it only where nothing provisioned it). key, when not nil, signs heads.
func OpenStore(ctx context.Context, js jetstream.JetStream, key ed25519.PrivateKey) (*Store, error) {
	stream, err := natsx.Stream(ctx, js, Resources().Streams[0])
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	anchors, err := natsx.Stream(ctx, js, Resources().Streams[1])
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	st := &Store{js: js, stream: stream, key: key, now: time.Now}
	st.alarms.isolated = map[string]string{}
	st.anchors.stream, st.anchors.anchored = anchors, map[string]uint64{}
	return st, nil
}

func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// last reads a chain's last record and its stream sequence (nil, 0 when empty).
func (s *Store) last(ctx context.Context, chain string) (*demarchev1.AuditRecord, uint64, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, SubjectOf(chain))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("audit: head of %s: %w", chain, err)
	}
	r, err := checkStored(chain, msg.Sequence, msg.Data)
	if err != nil {
		return nil, 0, err
	}
	return r, msg.Sequence, nil
}

// ErrCorrupt is matched when a stored record of a chain is bad: it does not
// decode, is another chain's, or its hash is not its own. The chain is then
// isolated (see alarms), never retried against.
var ErrCorrupt = errors.New("audit chain corrupt")

// checkStored decodes a stored record and checks what it can say about itself.
func checkStored(chain string, streamSeq uint64, data []byte) (*demarchev1.AuditRecord, error) {
	var r demarchev1.AuditRecord
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: chain %s: the record at stream sequence %d does not decode: %v", ErrCorrupt, chain, streamSeq, err)
	}
	if r.GetChain() != chain {
		return nil, fmt.Errorf("%w: chain %s: the record at stream sequence %d says it is chain %q's", ErrCorrupt, chain, streamSeq, r.GetChain())
	}
	h, err := Hash(&r)
	if err != nil || !bytes.Equal(h, r.GetHash()) {
		return nil, fmt.Errorf("%w: chain %s: record %d (stream sequence %d) is not what its hash says: modified or forged", ErrCorrupt, chain, r.GetSequence(), streamSeq)
	}
	return &r, nil
}

// append links r (chain set, sequence and hashes not) to its chain's head and
// stores it. An event already stored on the chain is not stored again: the
// stored record comes back with duplicate set.
func (s *Store) append(ctx context.Context, r *demarchev1.AuditRecord) (_ *demarchev1.AuditRecord, duplicate bool, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		last, lastSeq, err := s.last(ctx, r.GetChain())
		if err != nil {
			return nil, false, err
		}
		if last != nil && last.GetEventId() == r.GetEventId() {
			return last, true, nil // delivered again after it went in
		}
		rec := proto.Clone(r).(*demarchev1.AuditRecord)
		if err := link(rec, last); err != nil {
			return nil, false, err
		}
		if s.key != nil {
			rec.Signature = ed25519.Sign(s.key, rec.GetHash())
		}
		b, err := Encode(rec)
		if err != nil {
			return nil, false, err
		}
		ack, err := s.js.Publish(ctx, SubjectOf(rec.GetChain()), b,
			jetstream.WithExpectLastSequencePerSubject(lastSeq),
			jetstream.WithMsgID(rec.GetEventId()+"@"+rec.GetChain()),
			jetstream.WithExpectStream(StreamName))
		if isWrongLast(err) {
			if attempt > 1000 {
				return nil, false, fmt.Errorf("audit: chain %s too contended", rec.GetChain())
			}
			continue // another writer appended first: link to its record
		}
		if err != nil {
			return nil, false, fmt.Errorf("audit: append to %s: %w", rec.GetChain(), err)
		}
		if ack.Duplicate { // stored before (not at the head any more): keep that one
			stored, err := s.stream.GetMsg(ctx, ack.Sequence)
			if err != nil {
				return nil, true, fmt.Errorf("audit: read stored record: %w", err)
			}
			var old demarchev1.AuditRecord
			return &old, true, proto.Unmarshal(stored.Data, &old)
		}
		return rec, false, nil
	}
}

// RecordOf is the record of a crisis event, before it is linked into a chain.
func (s *Store) RecordOf(ev eventbus.Event) (*demarchev1.AuditRecord, error) {
	digest, err := EventDigest(ev)
	if err != nil {
		return nil, fmt.Errorf("audit: digest of event %s: %w", ev.ID, err)
	}
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT, CrisisId: ev.Subject, EventId: ev.ID, EventType: ev.Type,
		EventSource: ev.Source, EventTime: timestamppb.New(ev.Time), EventDigest: digest, Principal: PrincipalOf(ev),
		RecordedAt: timestamppb.New(s.now()),
		WorkflowId: ev.Origin.WorkflowID, RunId: ev.Origin.RunID, HistoryEventId: ev.Origin.HistoryEventID,
	}
	if d, ok := ev.Data.(*demarchev1.DecisionRecorded); ok {
		r.DecisionNumber, r.DecisionKind = d.GetDecision().GetNumber(), d.GetDecision().GetKind()
	}
	return r, nil
}

// AppendEvent checks a crisis event (CheckEvent), then appends it to its
// crisis's chain and to the global chain. Appending the same event again
// stores nothing. A refused event raises an alarm and comes back as a
// permanent failure (the consumer dead-letters it); a crisis chain found
// corrupt is isolated (alarm) and the event goes on the global chain alone,
// so a bad chain never holds up the others.
func (s *Store) AppendEvent(ctx context.Context, ev eventbus.Event) error {
	if err := CheckEvent(ev); err != nil {
		if aerr := s.raise(ctx, &demarchev1.AuditAlarm{Kind: AlarmForgedEvent, CrisisId: ev.Subject, EventId: ev.ID, Reason: err.Error()}); aerr != nil {
			return aerr
		}
		return fmt.Errorf("%w: %w", eventbus.ErrPermanent, err)
	}
	r, err := s.RecordOf(ev)
	if err != nil {
		return err
	}
	return s.appendBoth(ctx, r)
}

// appendBoth appends r to its crisis's chain (unless isolated) and to the global chain.
func (s *Store) appendBoth(ctx context.Context, r *demarchev1.AuditRecord) error {
	crisisChain := ChainOf(r.GetCrisisId())
	onCrisis := false
	if s.alarms.reason(crisisChain) == "" {
		r.Chain = crisisChain
		_, _, err := s.append(ctx, r)
		switch {
		case errors.Is(err, ErrCorrupt):
			if err := s.isolate(ctx, crisisChain, err); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			onCrisis = true
		}
	}
	if !onCrisis {
		r.Detail = strings.TrimSpace(r.GetDetail() + fmt.Sprintf(" [not on chain %s: %s]", crisisChain, s.alarms.reason(crisisChain)))
	}
	if s.alarms.reason(GlobalChain) == "" {
		r.Chain = GlobalChain
		_, _, err := s.append(ctx, r)
		if errors.Is(err, ErrCorrupt) {
			if err := s.isolate(ctx, GlobalChain, err); err != nil {
				return err
			}
		} else if err != nil {
			return err
		} else {
			return nil
		}
	}
	if !onCrisis {
		return fmt.Errorf("audit: event %s: its crisis chain and the global chain are both isolated: nowhere to record it", r.GetEventId())
	}
	return nil
}

// AppendOperation records an operation done to a crisis's workflow outside
// Démarche (terminate, cancel, reset), read from its history, on the
// crisis's chain and the global chain: a record of kind OPERATION, event
// type OperationEventType, carrying the workflow run and history event.
// Recording the same operation (event_id) again stores nothing new.
func (s *Store) AppendOperation(ctx context.Context, req *demarchev1.AuditOperationRequest) (*demarchev1.AuditOperationResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_OPERATION, CrisisId: req.GetCrisisId(), EventId: req.GetEventId(),
		EventType: OperationEventType, EventSource: "temporal", EventTime: req.GetTime(), Principal: cmpOr(req.GetIdentity(), "temporal"),
		RecordedAt: timestamppb.New(s.now()), Detail: fmt.Sprintf("%s: %s", req.GetOperation(), req.GetReason()),
		WorkflowId: req.GetWorkflowId(), RunId: req.GetRunId(), HistoryEventId: req.GetHistoryEventId(),
	}
	if err := s.appendBoth(ctx, r); err != nil {
		return nil, err
	}
	return &demarchev1.AuditOperationResponse{Record: r}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// RecordRead is AppendRead as a request handler.
func (s *Store) RecordRead(ctx context.Context, req *demarchev1.AuditReadRequest) (*demarchev1.AuditReadResponse, error) {
	if err := s.AppendRead(ctx, req.GetReader(), req.GetCrisisId(), req.GetDetail()); err != nil {
		return nil, err
	}
	return &demarchev1.AuditReadResponse{}, nil
}

// AppendRead records that reader read audit data (detail says what) in the
// global chain, and in the crisis's chain when one is named and exists.
func (s *Store) AppendRead(ctx context.Context, reader, crisisID, detail string) error {
	now := timestamppb.New(s.now())
	r := &demarchev1.AuditRecord{
		Kind: demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ, CrisisId: crisisID, EventId: "read-" + nuid.Next(),
		EventType: ReadEventType, EventSource: Source, EventTime: now, Principal: reader, RecordedAt: now, Detail: detail,
	}
	chains := []string{GlobalChain}
	if crisisID != "" && s.alarms.reason(ChainOf(crisisID)) == "" {
		if last, _, err := s.last(ctx, ChainOf(crisisID)); err != nil && !errors.Is(err, ErrCorrupt) {
			return err
		} else if last != nil {
			chains = append(chains, ChainOf(crisisID))
		}
	}
	for _, chain := range chains {
		r.Chain = chain
		if _, _, err := s.append(ctx, r); errors.Is(err, ErrCorrupt) {
			if err := s.isolate(ctx, chain, err); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Records reads a chain's records after a sequence (0: from the first), at
// most limit of them (0: all), in order. Reading here is not audited: the
// service's endpoints audit their callers.
func (s *Store) Records(ctx context.Context, chain string, after uint64, limit int) ([]*demarchev1.AuditRecord, error) {
	subj := SubjectOf(chain)
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", chain, err)
	}
	n := info.State.Subjects[subj]
	if n <= after {
		return nil, nil
	}
	want := n - after
	if limit > 0 && uint64(limit) < want {
		want = uint64(limit)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, InactiveThreshold: natsx.OneShotInactive}
	if after > 0 {
		at, err := s.startOf(ctx, chain, after, info.State.LastSeq)
		if err != nil {
			return nil, err
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, at
	}
	cons, err := s.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", chain, err)
	}
	out := make([]*demarchev1.AuditRecord, 0, want)
	for uint64(len(out)) < want {
		msg, err := natsx.Next(cons, 5*time.Second) // waits out a cluster's "no responders" for a new consumer
		if err != nil {
			return nil, fmt.Errorf("audit: read record %d of %s: %w", after+uint64(len(out))+1, chain, err)
		}
		var r demarchev1.AuditRecord
		if err := proto.Unmarshal(msg.Data(), &r); err != nil {
			// Kept as found (undecodable bytes are a break Verify reports).
			meta, _ := msg.Metadata()
			var at uint64
			if meta != nil {
				at = meta.Sequence.Stream
			}
			r = demarchev1.AuditRecord{Chain: chain, Detail: fmt.Sprintf("%s at stream sequence %d: %v", undecodable, at, err)}
		}
		out = append(out, &r)
	}
	return out, nil
}

// startOf finds the smallest stream sequence from which the chain's next
// message is its record after `after`: a binary search over stream sequences,
// since chain sequences grow with stream sequences.
func (s *Store) startOf(ctx context.Context, chain string, after, lastSeq uint64) (uint64, error) {
	lo, hi := uint64(1), lastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		msg, err := s.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(SubjectOf(chain)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			hi = mid
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("audit: chain %s: find record %d: %w", chain, after+1, err)
		}
		var r demarchev1.AuditRecord
		if err := proto.Unmarshal(msg.Data, &r); err != nil {
			return 0, fmt.Errorf("audit: chain %s: stream sequence %d: %w", chain, msg.Sequence, err)
		}
		if r.GetSequence() > after {
			hi = mid
		} else {
			lo = msg.Sequence + 1
		}
	}
	return lo, nil
}

// Head is a chain's signed (when a key is configured) head; ErrNotFound when empty.
func (s *Store) Head(ctx context.Context, chain string) (*demarchev1.ChainHead, error) {
	last, _, err := s.last(ctx, chain)
	if err != nil {
		return nil, err
	}
	if last == nil {
		return nil, fmt.Errorf("%w: no audit chain %s", errs.ErrNotFound, chain)
	}
	h := HeadOf(last)
	return h, SignHead(h, s.key)
}

// Chains lists the crisis chains, sorted.
func (s *Store) Chains(ctx context.Context) ([]string, error) {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(SubjectOf(crisisChainPrefix+"*")))
	if err != nil {
		return nil, fmt.Errorf("audit: list chains: %w", err)
	}
	var out []string
	for subj := range info.State.Subjects {
		out = append(out, strings.TrimPrefix(subj, SubjectRoot+"."))
	}
	sort.Strings(out)
	return out, nil
}

// ReadChain is the chain endpoint: it records the read, then returns a page of
// the chain and its head.
func (s *Store) ReadChain(ctx context.Context, req *demarchev1.AuditChainRequest) (*demarchev1.AuditChain, error) {
	chain := ChainOf(req.GetCrisisId())
	if err := s.AppendRead(ctx, req.GetReader(), req.GetCrisisId(), fmt.Sprintf("chain %s after %d", chain, req.GetAfterSequence())); err != nil {
		return nil, err
	}
	head, headErr := s.Head(ctx, chain)
	if errors.Is(headErr, ErrCorrupt) {
		// The records are served as stored: Verify names the bad one.
		head, headErr = nil, nil
	} else if headErr != nil && !errors.Is(headErr, errs.ErrNotFound) {
		return nil, headErr
	}
	anchor, err := s.LastAnchor(ctx, chain)
	if err != nil {
		return nil, err
	}
	if headErr != nil {
		if anchor == nil {
			return nil, headErr // no such chain, and none ever anchored
		}
		// An anchored chain that holds nothing now was emptied: served
		// empty with its anchor, so Verify says it was truncated.
		return &demarchev1.AuditChain{Chain: chain, Anchor: anchor}, nil
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = DefaultPage
	}
	recs, err := s.Records(ctx, chain, req.GetAfterSequence(), limit)
	if err != nil {
		return nil, err
	}
	return &demarchev1.AuditChain{Chain: chain, Records: recs, Head: head, Anchor: anchor}, nil
}

// ReadHeads is the heads endpoint: it records the read, then returns the
// global head and the head of the crisis named (or of every crisis).
func (s *Store) ReadHeads(ctx context.Context, req *demarchev1.AuditHeadsRequest) (*demarchev1.AuditHeads, error) {
	what := "heads of every chain"
	if req.GetCrisisId() != "" {
		what = "heads of global and " + ChainOf(req.GetCrisisId())
	}
	if err := s.AppendRead(ctx, req.GetReader(), req.GetCrisisId(), what); err != nil {
		return nil, err
	}
	chains := []string{GlobalChain}
	if req.GetCrisisId() != "" {
		chains = append(chains, ChainOf(req.GetCrisisId()))
	} else {
		all, err := s.Chains(ctx)
		if err != nil {
			return nil, err
		}
		chains = append(chains, all...)
	}
	out := &demarchev1.AuditHeads{}
	for _, c := range chains {
		h, err := s.Head(ctx, c)
		if errors.Is(err, ErrCorrupt) {
			continue // isolated: its alarm says why
		}
		if err != nil {
			return nil, err
		}
		out.Heads = append(out.Heads, h)
	}
	return out, nil
}
