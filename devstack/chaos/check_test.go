package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/partners"
)

type streamMsg struct {
	seq uint64
	msg *nats.Msg
}

// readStream reads every message of a stream matching filter, by sequence.
func readStream(ctx context.Context, p *platform, stream, filter string) ([]streamMsg, error) {
	// Reading any stream by sequence is the provisioner's alone (natsauth:
	// STREAM.MSG.GET only for a stream's owner); the checker holds every credential.
	nc, err := p.connect(natsauth.Provisioner)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []streamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s message %d: %w", stream, seq, err)
		}
		if !subjectMatches(filter, raw.Subject) {
			continue
		}
		out = append(out, streamMsg{seq: seq, msg: &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data}})
	}
	return out, nil
}

func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

// token of a crisis event's subject: demarche.crisis.<region>.<country>.<id>.<token>.
func tokenOf(subject string) string { return subject[strings.LastIndex(subject, ".")+1:] }

// figures are the run's numbers, printed as a table.
type figures struct {
	rows [][2]string
}

func (f *figures) add(name string, format string, args ...any) {
	f.rows = append(f.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func (f *figures) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue")
	fmt.Fprintln(tw, "------\t-----")
	for _, r := range f.rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
}

// verdict gathers the checks' findings: losses, double payments, and other
// failures, each with what was missing.
type verdict struct {
	losses, doubles, failures []string
}

func (v *verdict) loss(format string, args ...any) {
	v.losses = append(v.losses, fmt.Sprintf(format, args...))
}
func (v *verdict) double(format string, args ...any) {
	v.doubles = append(v.doubles, fmt.Sprintf(format, args...))
}
func (v *verdict) fail(format string, args ...any) {
	v.failures = append(v.failures, fmt.Sprintf(format, args...))
}

// check runs every outcome check once the faults have stopped.
func check(ctx context.Context, p *platform, w *workload, in *injector, fig *figures) *verdict {
	v := &verdict{}
	crises := w.all()

	// 1. Every crisis closes (drills, driven ones) or keeps the state it was left in.
	states := map[string]state{}
	closed, kept := 0, 0
	for _, c := range crises {
		c.mu.Lock()
		cerr, keptState, keepAfter := c.err, c.kept, c.keepAfter
		c.mu.Unlock()
		if cerr != nil {
			v.fail("crisis %s: the workload failed: %v", c.id, cerr)
		}
		var st state
		wait := 8 * time.Minute
		if cerr != nil {
			wait = 10 * time.Second // its driver gave up: read it, do not wait for it
		}
		err := eventually(ctx, wait, "crisis "+c.id+" closed or as kept", func() (bool, string) {
			var err error
			st, err = w.getState(ctx, c.id)
			if err != nil {
				return false, err.Error()
			}
			if keepAfter > 0 {
				return true, ""
			}
			return st.closed(), "stage " + st.stage() + fmt.Sprintf(", active %v, pending %v", st.activeStages(), st.pending())
		})
		if err != nil {
			v.loss("%v", err)
			continue
		}
		states[c.id] = st
		if keepAfter > 0 {
			switch {
			case keptState == nil:
				v.fail("crisis %s: the workload never reached the state it should keep", c.id)
			case st.closed() || fmt.Sprint(st.decisionKinds()) != fmt.Sprint(keptState.decisionKinds()) || st.stage() != keptState.stage() ||
				fmt.Sprint(st.pending()) != fmt.Sprint(keptState.pending()):
				v.loss("crisis %s did not keep its state: decisions %v at stage %s waiting for %v, left with %v at stage %s waiting for %v",
					c.id, st.decisionKinds(), st.stage(), st.pending(), keptState.decisionKinds(), keptState.stage(), keptState.pending())
			default:
				kept++
			}
		} else if st.closed() {
			closed++
		}
	}

	// 2. Consumers drain: nothing pending, nothing unacknowledged.
	consumers, delivered, redelivered := map[string]bool{}, uint64(0), 0
	err := eventually(ctx, 5*time.Minute, "every durable consumer of the crisis stream drained", func() (bool, string) {
		nc, err := p.connect(natsauth.Observer) // reads every consumer's state
		if err != nil {
			return false, err.Error()
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false, err.Error()
		}
		st, err := js.Stream(ctx, eventbus.StreamName)
		if err != nil {
			return false, err.Error()
		}
		lister := st.ListConsumers(ctx)
		var behind []string
		delivered, redelivered = 0, 0
		for info := range lister.Info() {
			if info.Config.Durable == "" {
				continue
			}
			consumers[info.Name] = true
			delivered += info.Delivered.Consumer
			redelivered += info.NumRedelivered
			if info.NumPending > 0 || info.NumAckPending > 0 {
				behind = append(behind, fmt.Sprintf("%s (%d pending, %d unacknowledged)", info.Name, info.NumPending, info.NumAckPending))
			}
		}
		if err := lister.Err(); err != nil {
			return false, err.Error()
		}
		return len(behind) == 0 && len(consumers) > 0, fmt.Sprintf("behind: %v", behind)
	})
	if err != nil {
		v.loss("%v", err)
	}

	// 3. The crisis stream: each event once by ce-id; every crisis's events there.
	msgs, err := readStream(ctx, p, eventbus.StreamName, eventbus.AllEvents())
	if err != nil {
		v.fail("read the crisis stream: %v", err)
	}
	poison := map[string]bool{}
	for _, id := range in.poison {
		poison[id] = true
	}
	byCrisis := map[string][]streamMsg{}
	seen := map[string]uint64{}
	for _, m := range msgs {
		if poison[m.msg.Header.Get("Nats-Msg-Id")] {
			continue
		}
		id := m.msg.Header.Get(eventbus.HeaderID)
		if _, late := in.lateDups[m.seq]; late {
			continue // checked below: absorbed by the consumers
		}
		if first, dup := seen[id]; dup {
			v.double("event %s is on the crisis stream twice (sequences %d and %d, %s)", id, first, m.seq, m.msg.Subject)
			continue
		}
		seen[id] = m.seq
		crisisID := m.msg.Header.Get(eventbus.HeaderSubject)
		byCrisis[crisisID] = append(byCrisis[crisisID], m)
	}
	ledgerLines := map[string]int{} // crisis -> disbursement lines (filled by the ledger check)
	dupLines := checkLedger(ctx, p, w, v, ledgerLines)
	for _, c := range crises {
		st, ok := states[c.id]
		if !ok {
			continue
		}
		tokens := map[string]int{}
		for _, m := range byCrisis[c.id] {
			tokens[tokenOf(m.msg.Subject)]++
		}
		if tokens["crisis_opened"] != 1 {
			v.loss("crisis %s: %d crisis_opened events on the stream, want 1", c.id, tokens["crisis_opened"])
		}
		if want := map[bool]int{true: 1, false: 0}[st.closed()]; tokens["crisis_closed"] != want {
			v.loss("crisis %s (stage %s): %d crisis_closed events on the stream, want %d", c.id, st.stage(), tokens["crisis_closed"], want)
		}
		if n := len(st.decisionKinds()); tokens["decision_recorded"] != n {
			v.loss("crisis %s: %d decision_recorded events on the stream, the crisis recorded %d decisions", c.id, tokens["decision_recorded"], n)
		}
		if n := len(st.list("timeline")); tokens["stage_entered"] != n {
			v.loss("crisis %s: %d stage_entered events on the stream, the crisis's timeline has %d entries", c.id, tokens["stage_entered"], n)
		}
		if tokens["funds_disbursed"] != ledgerLines[c.id] {
			v.loss("crisis %s: %d funds_disbursed events on the stream, %d disbursement lines in the ledger", c.id, tokens["funds_disbursed"], ledgerLines[c.id])
		}
	}
	for id, evIDs := range in.synthetic {
		got := map[string]bool{}
		for _, m := range byCrisis[id] {
			got[m.msg.Header.Get(eventbus.HeaderID)] = true
		}
		for _, e := range evIDs {
			if !got[e] {
				v.loss("synthetic crisis %s: event %s is not on the stream", id, e)
			}
		}
	}

	// 4. Dead letters. Every one carries a reason and is accounted for:
	//   - a poison event by every durable consumer of the crisis stream (no
	//     consumer can take it, none may stall on it);
	//   - an event of the synthetic crisis by the audit and partners services
	//     alone: it was published without the workflow run and history event
	//     it would come from, so the shared origin guard (pkg/origin) refuses
	//     it as forged in both (audit raises an alarm, partners forward it to
	//     no one), while the event log takes the crisis's events in whatever
	//     order they came;
	//   - a genuine event by none.
	dlq, err := readStream(ctx, p, eventbus.DeadLetterStreamName, eventbus.DeadLetterRoot+".>")
	if err != nil {
		v.fail("read the dead-letter stream: %v", err)
	}
	syntheticIDs := map[string]string{}
	for id, evIDs := range in.synthetic {
		for _, e := range evIDs {
			syntheticIDs[e] = id
		}
	}
	poisonCE := map[string]bool{}
	for _, m := range msgs {
		if poison[m.msg.Header.Get("Nats-Msg-Id")] {
			poisonCE[m.msg.Header.Get(eventbus.HeaderID)] = true
		}
	}
	deadBy := map[string]map[string]bool{} // ce-id -> consumers that dead-lettered it
	perConsumer := map[string]int{}
	forgedRefused := 0
	for _, m := range dlq {
		reason := m.msg.Header.Get(eventbus.HeaderDeadLetterReason)
		who := m.msg.Header.Get(eventbus.HeaderDeadLetterConsumer)
		ce := m.msg.Header.Get(eventbus.HeaderID)
		if deadBy[ce][who] {
			continue // dead-lettered again after a restart: one refusal
		}
		if deadBy[ce] == nil {
			deadBy[ce] = map[string]bool{}
		}
		deadBy[ce][who] = true
		perConsumer[who]++
		if reason == "" {
			v.fail("dead letter %d (%s) carries no reason", m.seq, m.msg.Subject)
		}
		switch {
		case poisonCE[ce]:
		case syntheticIDs[ce] != "":
			switch {
			case (who != audit.Durable && who != partners.Durable) || !strings.Contains(reason, audit.ErrForged.Error()):
				v.loss("synthetic event %s was dead-lettered by %s (%s): only audit and partners may refuse it, as forged", ce, who, reason)
			case who == audit.Durable:
				forgedRefused++
			}
		default:
			if _, isReal := seen[ce]; isReal {
				v.loss("event %s was dead-lettered by %s (%s): a genuine event no consumer should give up on", ce, who, reason)
			} else {
				v.fail("dead letter %d (%s, event %s, by %s) is of no event the suite published or injected", m.seq, m.msg.Subject, ce, who)
			}
		}
	}
	for ce := range poisonCE {
		for name := range consumers {
			if !deadBy[ce][name] {
				v.loss("poison event %s was not dead-lettered by consumer %s", ce, name)
			}
		}
	}
	for ce, crisisID := range syntheticIDs {
		if !deadBy[ce][audit.Durable] {
			v.fail("synthetic event %s of %s (no workflow origin) was not refused by the audit service", ce, crisisID)
		}
		if !deadBy[ce][partners.Durable] {
			v.fail("synthetic event %s of %s (no workflow origin) was not refused by the partners service", ce, crisisID)
		}
	}

	// 5. Audit: each chain verifies (demarche audit verify) and holds each of
	// its crisis's events once.
	auditChecked := 0
	absorbedLate := 0
	chainOf := map[string]map[string]int{}
	checkChain := func(crisisID string, want []string, verify bool) {
		// A synthetic crisis has no workflow, so the gateway answers 404 for
		// it: its records are checked here and in the global chain's verify.
		if verify {
			if out, err := auditVerify(ctx, p, crisisID); err != nil {
				v.fail("audit verify --crisis %s: %v\n%s", crisisID, err, out)
				return
			}
		}
		var records map[string]int
		err := eventually(ctx, 3*time.Minute, "audit chain of "+crisisID+" holds every event", func() (bool, string) {
			var err error
			records, err = chainEventIDs(ctx, p, crisisID)
			if err != nil {
				return false, err.Error()
			}
			var missing []string
			for _, e := range want {
				if records[e] == 0 {
					missing = append(missing, e)
				}
			}
			return len(missing) == 0, fmt.Sprintf("%d of %d events missing from the chain, e.g. %v", len(missing), len(want), missing[:min(3, len(missing))])
		})
		if err != nil {
			v.loss("%v", err)
		}
		chainOf[crisisID] = records
		for e, n := range records {
			if n > 1 {
				v.double("audit chain of %s holds event %s %d times", crisisID, e, n)
			}
		}
		auditChecked++
	}
	for _, c := range crises {
		var want []string
		for _, m := range byCrisis[c.id] {
			want = append(want, m.msg.Header.Get(eventbus.HeaderID))
		}
		checkChain(c.id, want, true)
	}
	// The synthetic crisis's events were refused: none is chained, and the
	// global chain holds a forged-event alarm for each.
	var global []*demarchev1.AuditRecord
	if len(in.synthetic) > 0 {
		global, err = chainRecords(ctx, p, "")
		if err != nil {
			v.fail("read the global audit chain: %v", err)
		}
	}
	alarmed := map[string]bool{}
	for _, r := range global {
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT && syntheticIDs[r.GetEventId()] != "" {
			v.fail("synthetic event %s (no workflow origin) is on the global audit chain as an event (record %d)", r.GetEventId(), r.GetSequence())
		}
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_ALARM && strings.HasPrefix(r.GetDetail(), audit.AlarmForgedEvent+":") {
			for e := range syntheticIDs {
				if strings.Contains(r.GetDetail(), fmt.Sprintf("event %q", e)) {
					alarmed[e] = true
				}
			}
		}
	}
	for id, evIDs := range in.synthetic {
		for _, e := range evIDs {
			if !alarmed[e] {
				v.fail("synthetic event %s of %s was refused without a %s alarm on the global chain", e, id, audit.AlarmForgedEvent)
			}
		}
		if records, err := chainEventIDs(ctx, p, id); err == nil {
			v.fail("synthetic crisis %s has an audit chain of %d event records: its events should all have been refused", id, len(records))
		}
	}
	for _, ce := range in.lateDups {
		for _, records := range chainOf {
			if records[ce] == 1 {
				absorbedLate++
				break
			}
		}
	}
	if out, err := auditVerify(ctx, p, ""); err != nil {
		v.fail("audit verify (global chain): %v\n%s", err, out)
	}

	// Figures.
	drills, people := 0, 0
	for _, c := range crises {
		if c.drill {
			drills++
		} else {
			people++
		}
	}
	fig.add("crises", "%d (%d drills, %d people-driven; %d closed, %d kept open as left)", len(crises), drills, people, closed, kept)
	in.mu.Lock()
	var kinds []string
	total := 0
	for k, n := range in.faults {
		if k != faultInjectRound {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
			total += n
		}
	}
	sort.Strings(kinds)
	fig.add("faults injected", "%d: %s", total, strings.Join(kinds, ", "))
	fig.add("events published", "%d on %s (%d genuine event ids, %d late duplicates, %d poison)", len(msgs), eventbus.StreamName, len(seen), len(in.lateDups), len(in.poison))
	fig.add("events delivered", "%d deliveries to %d durable consumers (%d redeliveries outstanding at the end)", delivered, len(consumers), redelivered)
	var pc []string
	for k, n := range perConsumer {
		pc = append(pc, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(pc)
	fig.add("dead-lettered", "%d (%s): %d poison × %d consumers, %d synthetic events refused by audit as forged", len(dlq), strings.Join(pc, ", "), len(poisonCE), len(consumers), forgedRefused)
	fig.add("duplicates absorbed", "%d of %d republished at the stream (msg id); %d of %d late duplicates by the audit chain (ce-id); %d requests retried under their idempotency key",
		in.absorbedAtStream, in.dupsSent, absorbedLate, len(in.lateDups), w.retries.Load())
	in.mu.Unlock()
	fig.add("audit chains verified", "%d crisis chains + the global chain", auditChecked)
	fig.add("losses", "%d", len(v.losses))
	fig.add("events duplicated", "%d (on the crisis stream by ce-id, or in an audit chain)", len(v.doubles)-dupLines)
	fig.add("double payments", "%d (of %d ledger lines checked)", dupLines, sumValues(ledgerLines))
	return v
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkLedger reads every fund's ledger through the gateway: each
// disbursement paid once (by crisis and funding request), every approved
// request and every closed drill paid. It fills lines (crisis -> lines) and
// returns the number of double payments.
func checkLedger(ctx context.Context, p *platform, w *workload, v *verdict, lines map[string]int) int {
	paid := map[string]int{} // crisis/request -> lines
	doubles := 0
	for _, fund := range []string{"flexible-financing", "drill-fund", "peacebuilding-irf"} {
		var resp map[string]any
		err := eventually(ctx, 2*time.Minute, "read the ledger of "+fund, func() (bool, string) {
			err := p.api(ctx, "POST", "/v1/funding/ledger", "auditor", map[string]string{"fund": fund}, &resp)
			if err != nil && !errors.Is(err, errUnavailable) {
				resp = nil
				return true, "" // a fund this platform does not have
			}
			return err == nil, fmt.Sprint(err)
		})
		if err != nil {
			v.fail("%v", err)
			continue
		}
		for _, e := range state(resp).list("entries") {
			if !strings.Contains(strings.ToLower(e.str("kind")), "disburse") {
				continue
			}
			crisisID, req := e.str("crisisId", "crisis_id"), e.str("requestId", "request_id")
			lines[crisisID]++
			k := crisisID + "/" + req
			paid[k]++
			if paid[k] > 1 {
				doubles++
				v.double("crisis %s request %s paid %d times in %s (line %s)", crisisID, req, paid[k], fund, e.str("sequence"))
			}
		}
	}
	for _, c := range w.all() {
		c.mu.Lock()
		approved := append([]string(nil), c.approved...)
		c.mu.Unlock()
		for _, r := range approved {
			if paid[c.id+"/"+r] == 0 {
				v.loss("crisis %s request %s was approved and never paid", c.id, r)
			}
		}
		if c.drill && lines[c.id] != 1 {
			v.loss("drill %s: %d disbursement lines, want 1 from the drill fund", c.id, lines[c.id])
		}
	}
	return doubles
}

// auditVerify runs `demarche audit verify` as the auditor.
func auditVerify(ctx context.Context, p *platform, crisisID string) (string, error) {
	args := []string{"audit", "verify"}
	if crisisID != "" {
		args = append(args, "--crisis", crisisID)
	}
	var out string
	err := eventually(ctx, 3*time.Minute, "audit verify "+crisisID, func() (bool, string) {
		var err error
		out, err = p.cli(ctx, "auditor", args...)
		if err == nil && strings.Contains(out, "verifies") {
			return true, ""
		}
		if err != nil && !strings.Contains(out, "unavailable") && !strings.Contains(out, "503") && !strings.Contains(out, "no responders") {
			return true, "" // a verdict, not a fault: reported below
		}
		return false, strings.TrimSpace(out)
	})
	if err != nil {
		return out, err
	}
	if !strings.Contains(out, "verifies") {
		return out, errors.New("the chain does not verify")
	}
	return out, nil
}

// chainEventIDs reads a crisis's audit chain and counts its event records by
// event id; the records of reads (which reading adds) are skipped.
func chainEventIDs(ctx context.Context, p *platform, crisisID string) (map[string]int, error) {
	records, err := chainRecords(ctx, p, crisisID)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, r := range records {
		if r.GetKind() == demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_EVENT {
			out[r.GetEventId()]++
		}
	}
	return out, nil
}

// chainRecords reads a crisis's audit chain (the global chain for "") from
// the audit service (NATS micro, as the gateway: chains are read through it).
func chainRecords(ctx context.Context, p *platform, crisisID string) ([]*demarchev1.AuditRecord, error) {
	nc, err := p.connect(natsauth.Gateway)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var out []*demarchev1.AuditRecord
	for {
		var page demarchev1.AuditChain
		req := &demarchev1.AuditChainRequest{CrisisId: crisisID, Reader: "chaos-suite", AfterSequence: uint64(len(out))}
		if err := natsrpc.Call(ctx, nc, natsrpc.AuditChain, req, &page); err != nil {
			return nil, err
		}
		out = append(out, page.GetRecords()...)
		if len(page.GetRecords()) == 0 || uint64(len(out)) >= page.GetHead().GetSequence() {
			return out, nil
		}
	}
}
