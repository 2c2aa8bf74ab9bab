package attack_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/partners"
)

const wallSignals = "signals"

// TestSignalSourcesAndPartnerDeliveries is wall 4 of the attack suite:
// signals are stamped by the credential that sent them (stream and HTTP),
// a forged crisis event declassifies nothing through the partners service,
// and a partner's stream tells it nothing of another's deliveries.
func TestSignalSourcesAndPartnerDeliveries(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	duty := demo(t, s, "duty")
	signalDLQ := deadLetters(t, s, eventbus.DeadLetterSubject(earlywarning.SignalsDurable))

	t.Run("a source's credential claiming another source", func(t *testing.T) {
		acled := natsAs(t, s, natsauth.SignalSourceIdentity("acled"))
		ajs, _ := jetstream.New(acled)
		// The forger sets the id (and Nats-Msg-Id) the genuine UCDP signal will carry.
		forged := sig("ucdp", "UCDP-ATTACK-1", "TD", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, 100)
		msg, err := eventbus.Encode(earlywarning.SignalSubject("acled"), eventbus.Event{ID: "ucdp.id.UCDP-ATTACK-1", Source: "/ucdp",
			Subject: demarchev1.SituationKey("TD", forged.GetCrisisType()), Time: time.Now(), Data: forged})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ajs.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("acled publishing on its own subject: %v", err)
		}
		reason := signalDLQ.wait(t, "ucdp.id.UCDP-ATTACK-1")
		if !strings.Contains(reason, `the body claims source "ucdp"`) || !strings.Contains(reason, "never its body") {
			t.Fatalf("dead-letter reason %q does not name the rule", reason)
		}
		if code, body := duty.do("GET", "/v1/situations/TD/border-dispute", ""); code != http.StatusNotFound {
			t.Fatalf("the forged signal was scored: %d %s", code, body)
		}
		attempt(t, wallSignals, "publish on demarche.signals.acled a signal claiming source ucdp, weight 100, with UCDP's id as Nats-Msg-Id",
			"signals-acled", "dead-lettered: "+reason+"; nothing scored, no crisis")

		// Publishing on UCDP's subject itself is refused by NATS.
		if err := publishRefused(t, s, natsauth.SignalSourceIdentity("acled"), earlywarning.SignalSubject("ucdp")); err == "" {
			t.Fatal("acled may publish on demarche.signals.ucdp")
		} else {
			attempt(t, wallSignals, "publish on demarche.signals.ucdp", "signals-acled", "refused by NATS: "+err)
		}

		// The genuine UCDP signal with that id, afterwards, counts.
		ucdp := natsAs(t, s, natsauth.SignalSourceIdentity("ucdp"))
		ujs, _ := jetstream.New(ucdp)
		genuine := sig("ucdp", "UCDP-ATTACK-1", "TD", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, 2)
		if err := earlywarning.PublishSignal(ctx, ujs, "/ucdp", genuine); err != nil {
			t.Fatal(err)
		}
		score := waitScore(t, duty, "TD/border-dispute", func(sc score) bool { return len(sc.Contributions) == 1 })
		if c := score.Contributions[0]; c.Source != "ucdp" || c.SourceID != "UCDP-ATTACK-1" || c.Weight != 2 || score.CrisisID != "" {
			t.Fatalf("after the genuine signal: %+v", score)
		}
		attempt(t, wallSignals, "the genuine UCDP signal with the forged id, afterwards", "signals-ucdp", "counted (weight 2, source ucdp): not shadowed")
	})

	t.Run("the operator speaks for itself alone", func(t *testing.T) {
		if err := publishRefused(t, s, natsauth.Operator, earlywarning.SignalSubject("ucdp")); err == "" {
			t.Fatal("the operator may publish on demarche.signals.ucdp")
		} else {
			attempt(t, wallSignals, "publish on demarche.signals.ucdp", "operator", "refused by NATS: "+err)
		}
		if err := publishRefused(t, s, natsauth.Operator, "demarche.earlywarning.ingest"); err == "" {
			t.Fatal("the operator may send ingest requests (the gateway's, which carry a person's stamp)")
		} else {
			attempt(t, wallSignals, "ingest request straight to early warning (demarche.earlywarning.ingest)", "operator", "refused by NATS: "+err)
		}
		op := natsAs(t, s, natsauth.Operator)
		ojs, _ := jetstream.New(op)
		forged := sig("ucdp", "UCDP-ATTACK-2", "TD", demarchev1.CrisisType_CRISIS_TYPE_BORDER_DISPUTE, 100)
		msg, err := eventbus.Encode(natsauth.SignalsOperatorSubject, eventbus.Event{ID: "op-claims-ucdp", Source: "/op", Subject: "TD", Time: time.Now(), Data: forged})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ojs.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		reason := signalDLQ.wait(t, "op-claims-ucdp")
		if !strings.Contains(reason, `the body claims source "ucdp"`) {
			t.Fatalf("dead-letter reason %q", reason)
		}
		attempt(t, wallSignals, "publish on demarche.signals.operator a signal claiming source ucdp", "operator", "dead-lettered: "+reason)
	})

	t.Run("a person over HTTP claiming a source", func(t *testing.T) {
		claim := `{"signals": [{"source": "ucdp", "sourceId": "UCDP-ATTACK-3", "countryCode": "TD", "crisisType": "CRISIS_TYPE_ELECTION_VIOLENCE", "weight": 100, "observedAt": %q, "summary": "forged"}]}`
		for _, who := range []string{"analyst", "ecowas"} {
			code, body := demo(t, s, who).do("POST", "/v1/signals", fmt.Sprintf(claim, time.Now().UTC().Format(time.RFC3339)))
			if code != http.StatusForbidden || !strings.Contains(body, "a signal's source is who sends it") {
				t.Fatalf("%s claiming ucdp: %d %s", who, code, body)
			}
			attempt(t, wallSignals, "POST /v1/signals with source ucdp, weight 100", who, fmt.Sprintf("%d: %s", code, strings.TrimSpace(body)))
		}
		if code, body := duty.do("GET", "/v1/situations/TD/election-violence", ""); code != http.StatusNotFound {
			t.Fatalf("a refused signal was scored: %d %s", code, body)
		}
		// Without a source (or with its own), it is recorded as the person's.
		code, body := demo(t, s, "analyst").do("POST", "/v1/signals", fmt.Sprintf(strings.Replace(claim, `"source": "ucdp", `, "", 1), time.Now().UTC().Format(time.RFC3339)))
		if code != http.StatusOK || !strings.Contains(body, `"source":"person_analyst"`) {
			t.Fatalf("analyst's own signal: %d %s", code, body)
		}
		score := waitScore(t, duty, "TD/election-violence", func(sc score) bool { return len(sc.Contributions) == 1 })
		if c := score.Contributions[0]; c.Source != "person_analyst" {
			t.Fatalf("recorded as %q", c.Source)
		}
		attempt(t, wallSignals, "POST /v1/signals without a source", "analyst", "recorded as person_analyst")
		// A warning attached to a crisis by hand is a signal too.
		code, body = duty.do("POST", "/v1/crises/NE-20261207-NOSUCH/controls/warn", `{"warning": {"source": "ucdp", "summary": "forged", "severity": 5, "observedAt": "2026-12-01T00:00:00Z"}}`)
		if code != http.StatusForbidden || !strings.Contains(body, "warning.source") || !strings.Contains(body, "a signal's source is who sends it") {
			t.Fatalf("warn control claiming ucdp: %d %s", code, body)
		}
		attempt(t, wallSignals, "POST /v1/crises/{id}/controls/warn with warning.source ucdp", "duty", fmt.Sprintf("%d: %s", code, strings.TrimSpace(body)))
	})

	t.Run("rules put into force by anyone but the head, or as someone else", func(t *testing.T) {
		lower := strings.Replace(string(earlywarning.DefaultRules().Source), "    default: 25", "    default: 1", 1)
		body := fmt.Sprintf(`{"rules": %q, "name": "attack.yaml"}`, base64.StdEncoding.EncodeToString([]byte(lower)))
		for _, who := range []string{"analyst", "auditor", "ecowas"} {
			code, resp := demo(t, s, who).do("POST", "/v1/warning/rules", body)
			if code != http.StatusForbidden || !strings.Contains(resp, "rules.apply needs one of the roles head-of-department") {
				t.Fatalf("%s applying rules: %d %s", who, code, resp)
			}
			attempt(t, wallSignals, "POST /v1/warning/rules (threshold 1 everywhere)", who, fmt.Sprintf("%d: %s", code, strings.TrimSpace(resp)))
		}
		// The demo duty officer is also head of department: the body may not name another person.
		code, resp := duty.do("POST", "/v1/warning/rules", strings.Replace(body, `"name"`, `"appliedBy": "hannah", "name"`, 1))
		if code != http.StatusBadRequest || !strings.Contains(resp, "applied_by") {
			t.Fatalf("a head applying rules as someone else: %d %s", code, resp)
		}
		attempt(t, wallSignals, "POST /v1/warning/rules with applied_by naming another person", "duty", fmt.Sprintf("%d: %s", code, strings.TrimSpace(resp)))
		for _, c := range []struct {
			id      natsauth.Identity
			subject string
			what    string
		}{
			{natsauth.Operator, natsrpc.EarlyWarningRules, "rules request straight to early warning (no person authenticated)"},
			{natsauth.Worker, natsrpc.EarlyWarningRules, "rules request straight to early warning (no person authenticated)"},
			{natsauth.Operator, "$KV." + earlywarning.RulesBucket + "." + earlywarning.RulesKey, "write the rules bucket's key active (unvalidated, unaudited rules)"},
			{natsauth.Gateway, "$KV." + earlywarning.RulesBucket + "." + earlywarning.RulesKey, "write the rules bucket's key active (unvalidated, unaudited rules)"},
			{natsauth.Worker, natsrpc.AuditRulesChanged, "ask audit to record a rules change naming any person"},
			{natsauth.Gateway, natsrpc.AuditRulesChanged, "ask audit to record a rules change naming any person"},
		} {
			why := publishRefused(t, s, c.id, c.subject)
			if why == "" {
				t.Fatalf("%s may publish on %s", c.id, c.subject)
			}
			attempt(t, wallSignals, c.what+" ("+c.subject+")", string(c.id), "refused by NATS: "+why)
		}
		// Nothing was applied: a new signal is scored under the default rules.
		one := `{"signals": [{"sourceId": "RULES-ATTACK-1", "countryCode": "TD", "crisisType": "CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE", "weight": 1, "observedAt": %q, "summary": "after the attempts"}]}`
		if code, resp := demo(t, s, "analyst").do("POST", "/v1/signals", fmt.Sprintf(one, time.Now().UTC().Format(time.RFC3339))); code != http.StatusOK {
			t.Fatalf("analyst's signal: %d %s", code, resp)
		}
		score := waitScore(t, duty, "TD/intercommunal-violence", func(sc score) bool { return len(sc.Contributions) > 0 })
		if score.Threshold != 25 || score.RulesVersion != earlywarning.DefaultRules().Version {
			t.Fatalf("after the attempts: threshold %g, rules %s", score.Threshold, score.RulesVersion)
		}
	})

	t.Run("a forged CrisisOpened declassifying a confidential crisis", func(t *testing.T) {
		forgedCrisisOpened(t, s, duty)
	})

	t.Run("a partner lists its stream's subjects", func(t *testing.T) {
		au := natsAs(t, s, natsauth.PartnerIdentity("AU"))
		ajs, _ := jetstream.New(au)
		st, err := ajs.Stream(ctx, partners.PartnerStream("AU"))
		if err != nil {
			t.Fatalf("AU's own stream: %v", err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
		if err != nil {
			t.Fatal(err)
		}
		for subject := range info.State.Subjects {
			if !strings.HasPrefix(subject, partners.SubjectRoot+".AU.") {
				t.Fatalf("AU's stream lists %s", subject)
			}
		}
		if len(info.State.Subjects) == 0 {
			t.Fatal("AU's stream lists nothing: the crisis shared with it should be there")
		}
		attempt(t, wallSignals, "STREAM.INFO with subjects_filter '>' on its own stream", "partner-AU",
			fmt.Sprintf("%d subjects, all demarche.partner.AU.…", len(info.State.Subjects)))
		for _, other := range []string{partners.PartnerStream("ECOWAS"), "DEMARCHE_PARTNERS", eventbus.StreamName} {
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := ajs.Stream(short, other)
			cancel()
			if err == nil {
				t.Fatalf("AU read the info of %s", other)
			}
			why := publishRefused(t, s, natsauth.PartnerIdentity("AU"), "$JS.API.STREAM.INFO."+other)
			if why == "" {
				t.Fatalf("AU may ask the info of %s", other)
			}
			attempt(t, wallSignals, "STREAM.INFO of "+other, "partner-AU", "refused by NATS: "+why)
		}
		if err := publishRefused(t, s, natsauth.PartnerIdentity("AU"), "$JS.API.STREAM.NAMES"); err == "" {
			t.Fatal("AU may list the streams")
		} else {
			attempt(t, wallSignals, "STREAM.NAMES", "partner-AU", "refused by NATS: "+err)
		}
	})

	t.Run("a partner reads its stream of a crisis shared with it", func(t *testing.T) {
		partnerReadsNoInternals(t, s, duty)
	})
}

// partnerReadsNoInternals opens a restricted crisis shared with ECOWAS,
// takes its triage decision with a planted rationale and escalates it with a
// planted reason; ECOWAS, reading its own stream with its credential through
// its one durable consumer, finds the stage and severity notices and no
// decision, no rationale, no reason (pkg/partnerview).
func partnerReadsNoInternals(t *testing.T, s *stack.Stack, duty caller) {
	ctx := context.Background()
	code, body := duty.do("POST", "/v1/crises", `{"crisis": {"title": "Shared talks", "countryCode": "NE", "crisisType": "unconstitutional-change", "severity": 2, "confidentiality": "restricted", "sharedWith": ["ECOWAS"]}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, body)
	}
	var st struct {
		Crisis struct {
			ID string `json:"id"`
		} `json:"crisis"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Crisis.ID == "" {
		t.Fatalf("open: %v %s", err, body)
	}
	id := st.Crisis.ID
	const rationale, reason = "ATTACK-RATIONALE-partner-feed", "ATTACK-REASON-partner-feed"
	confidPending(t, duty, id, "triage")
	if code, raw := duty.do("POST", "/v1/crises/"+id+"/decisions", `{"rationale": "`+rationale+`", "triage": {"assessment": "ATTACK-ASSESSMENT"}}`); code != http.StatusOK {
		t.Fatalf("triage: %d %s", code, raw)
	}
	if code, raw := duty.do("POST", "/v1/crises/"+id+"/controls/escalate", `{"reason": "`+reason+`"}`); code != http.StatusOK {
		t.Fatalf("escalate: %d %s", code, raw)
	}
	obs := natsAs(t, s, natsauth.Observer)
	ojs, _ := jetstream.New(obs)
	waitPartner(t, ojs, "ECOWAS", id, "severity_changed")

	nc := natsAs(t, s, natsauth.PartnerIdentity("ECOWAS"))
	pjs, _ := jetstream.New(nc)
	cons, err := pjs.CreateOrUpdateConsumer(ctx, partners.PartnerStream("ECOWAS"), jetstream.ConsumerConfig{
		Durable: "ECOWAS", FilterSubject: partners.PartnerSubjects("ECOWAS"), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("ECOWAS's own consumer: %v", err)
	}
	var types []string
	for done := false; !done; {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			h := m.Headers()
			if h.Get(eventbus.HeaderSubject) == id {
				types = append(types, strings.TrimPrefix(h.Get(eventbus.HeaderType), "org.demarche.crisis."))
				for _, planted := range []string{rationale, reason, "ATTACK-ASSESSMENT"} {
					if strings.Contains(string(m.Data()), planted) || strings.Contains(fmt.Sprint(h), planted) {
						t.Fatalf("ECOWAS's stream: %s carries %q", h.Get(eventbus.HeaderType), planted)
					}
				}
				if strings.Contains(h.Get(eventbus.HeaderType), "decision_recorded") || h.Get(eventbus.HeaderWorkflowRun) != "" {
					t.Fatalf("ECOWAS's stream: %s with workflow run %q", h.Get(eventbus.HeaderType), h.Get(eventbus.HeaderWorkflowRun))
				}
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		done = n == 0
	}
	if !slices.Contains(types, "severity_changed.v1") || !slices.Contains(types, "stage_completed.v1") {
		t.Fatalf("ECOWAS's stream of %s: %v; want the stage and severity notices", id, types)
	}
	attempt(t, wallSignals, "read its own stream (durable consumer ECOWAS) of a crisis shared with it, after a triage decision with a planted rationale and an escalation with a planted reason",
		"partner-ECOWAS", fmt.Sprintf("%d events (%s): no decision, no rationale, no reason, no workflow attributes", len(types), strings.Join(types, ", ")))
}

// forgedCrisisOpened opens a confidential crisis shared with AU alone, then
// publishes with the worker's credential (which may publish crisis events)
// a CrisisOpened marking it public, without origin and with the genuine
// opening's origin headers copied, and a SharingChanged adding ECOWAS, EU
// and LAS with the genuine origin copied. Each is dead-lettered by the
// partners service with its rule; after a genuine sharing change (the
// sentinel), which reaches SADC (not the AU: another organisation's change), ECOWAS, EU and LAS have received
// nothing of the crisis.
func forgedCrisisOpened(t *testing.T, s *stack.Stack, duty caller) {
	ctx := context.Background()
	obs := natsAs(t, s, natsauth.Observer)
	openings := make(chan *nats.Msg, 64)
	sub, err := obs.ChanSubscribe("demarche.crisis.*.NE.*.crisis_opened", openings)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	partnerDLQ := deadLetters(t, s, eventbus.DeadLetterSubject(partners.Durable))
	// The organisations that must receive nothing, listening as themselves.
	outsiders := map[string]*partnerInbox{}
	for _, org := range []string{"ECOWAS", "EU", "LAS"} {
		outsiders[org] = listenAs(t, s, org)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}

	code, body := duty.do("POST", "/v1/crises", `{"crisis": {"title": "Confidential talks", "countryCode": "NE", "crisisType": "unconstitutional-change", "severity": 3, "confidentiality": "confidential", "sharedWith": ["AU"]}}`)
	if code != http.StatusCreated {
		t.Fatalf("open: %d %s", code, body)
	}
	var st struct {
		Crisis struct {
			ID string `json:"id"`
		} `json:"crisis"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Crisis.ID == "" {
		t.Fatalf("open: %v %s", err, body)
	}
	id := st.Crisis.ID
	var genuine *nats.Msg
	for genuine == nil {
		select {
		case m := <-openings:
			if m.Header.Get(eventbus.HeaderSubject) == id {
				genuine = m
			}
		case <-time.After(60 * time.Second):
			t.Fatal("no CrisisOpened on the stream")
		}
	}
	ojs, _ := jetstream.New(obs)
	waitPartner(t, ojs, "AU", id, "crisis_opened")

	ev, err := eventbus.Decode(genuine.Header, genuine.Data)
	if err != nil {
		t.Fatal(err)
	}
	declassified := proto.Clone(ev.Data).(*demarchev1.CrisisOpened)
	declassified.Crisis.Confidentiality, declassified.Crisis.SharedWith = demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC, nil
	worker := natsAs(t, s, natsauth.Worker)
	wjs, _ := jetstream.New(worker)
	publish := func(e eventbus.Event) {
		t.Helper()
		msg, err := eventbus.Encode(genuine.Subject[:strings.LastIndex(genuine.Subject, ".")+1]+tokenOf(t, e.Data), e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wjs.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("the worker publishing %s: %v", e.ID, err)
		}
	}
	forgeries := []struct{ id, what, rule string }{
		{"forged-open-no-origin-" + id, "CrisisOpened marked public, no workflow origin", "does not say which workflow run"},
		{"forged-open-copied-origin-" + id, "CrisisOpened marked public, the genuine opening's origin headers copied", "did not publish it"},
		{"forged-sharing-copied-origin-" + id, "SharingChanged adding ECOWAS, EU, LAS, the genuine opening's origin headers copied", "did not publish it"},
	}
	base := eventbus.Event{Source: ev.Source, Subject: id, Time: time.Now()}
	e := base
	e.ID, e.Data = forgeries[0].id, declassified
	publish(e)
	e = base
	e.ID, e.Data, e.Origin = forgeries[1].id, declassified, ev.Origin
	publish(e)
	e = base
	e.ID, e.Origin = forgeries[2].id, ev.Origin
	e.Data = &demarchev1.SharingChanged{CrisisId: id, SharedWith: []string{"AU", "ECOWAS", "EU", "LAS"}, Added: []string{"ECOWAS", "EU", "LAS"}, Reason: "forged"}
	publish(e)
	for _, f := range forgeries {
		reason := partnerDLQ.wait(t, f.id)
		if !strings.Contains(reason, origin.ErrForged.Error()) || !strings.Contains(reason, f.rule) {
			t.Fatalf("%s: dead-lettered with %q, want the rule %q", f.what, reason, f.rule)
		}
		attempt(t, wallSignals, "publish a forged "+f.what+" (confidential crisis shared with AU alone)", "worker",
			"not forwarded; dead-lettered by partners: "+reason)
	}

	// The sentinel: a genuine sharing change after the forgeries (each
	// crisis's events are handled in order) reaches SADC, whom it adds. The
	// AU, shared with before and after, receives nothing of it: a change
	// among other organisations is not its to know (pkg/partnerview).
	if code, body := duty.do("POST", "/v1/crises/"+id+"/sharing", `{"reason": "SADC mediates", "share": ["SADC"]}`); code != http.StatusOK {
		t.Fatalf("share with SADC: %d %s", code, body)
	}
	waitPartner(t, ojs, "SADC", id, "sharing_changed")
	if n := partnerCount(t, ojs, "AU", id, "sharing_changed"); n != 0 {
		t.Fatalf("AU received %d sharing changes adding another organisation", n)
	}
	if n := partnerCount(t, ojs, "AU", id, "crisis_opened"); n != 1 {
		t.Fatalf("AU received the opening %d times", n)
	}
	for org, in := range outsiders {
		if n := partnerCount(t, ojs, org, id, "*"); n != 0 {
			t.Fatalf("%s's stream holds %d events of a crisis never shared with it", org, n)
		}
		if got := in.of(id); len(got) != 0 {
			t.Fatalf("%s received %v of a crisis never shared with it", org, got)
		}
	}
	attempt(t, wallSignals, "after the forgeries, a genuine sharing change (sentinel) reached SADC (and not the AU: another organisation's change)", "partner-ECOWAS, partner-EU, partner-LAS",
		"received nothing of the crisis (their subjects and streams)")
}

// score is what GET /v1/situations/{country}/{type} answers, in part.
type score struct {
	CrisisID      string  `json:"crisisId"`
	Threshold     float64 `json:"threshold"`
	RulesVersion  string  `json:"rulesVersion"`
	Contributions []struct {
		Source   string  `json:"source"`
		SourceID string  `json:"sourceId"`
		Weight   float64 `json:"weight"`
	} `json:"contributions"`
}

func waitScore(t *testing.T, c caller, situation string, ok func(score) bool) score {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := c.do("GET", "/v1/situations/"+situation, "")
		var sc score
		if code == http.StatusOK && json.Unmarshal([]byte(body), &sc) == nil && ok(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			t.Fatalf("situation %s: %d %s", situation, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sig(source, id, country string, ct demarchev1.CrisisType, weight float64) *demarchev1.Signal {
	return &demarchev1.Signal{Source: source, SourceId: id, CountryCode: country, CrisisType: ct, Weight: weight,
		ObservedAt: timestamppb.Now(), Summary: "attack signal " + id}
}

func tokenOf(t *testing.T, data proto.Message) string {
	t.Helper()
	et, err := eventbus.TypeOf(data)
	if err != nil {
		t.Fatal(err)
	}
	return et.Token
}

// dlq collects the dead letters of one consumer, read as the observer.
type dlq struct {
	mu      sync.Mutex
	reasons map[string]string // ce-id → reason
}

func deadLetters(t *testing.T, s *stack.Stack, subject string) *dlq {
	t.Helper()
	d := &dlq{reasons: map[string]string{}}
	nc := natsAs(t, s, natsauth.Observer)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.reasons[m.Header.Get(eventbus.HeaderID)] = m.Header.Get(eventbus.HeaderDeadLetterReason)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *dlq) wait(t *testing.T, id string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		d.mu.Lock()
		r, ok := d.reasons[id]
		d.mu.Unlock()
		if ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not dead-lettered", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishRefused publishes once as id and answers the permissions violation
// the server sent back ("" when it accepted the publication).
func publishRefused(t *testing.T, s *stack.Stack, id natsauth.Identity, subject string) string {
	t.Helper()
	errs := make(chan error, 4)
	nc, err := nats.Connect(s.NATSURLFor(id), nats.CustomInboxPrefix(natsauth.InboxPrefix(id)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(subject, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			return err.Error()
		}
		t.Fatalf("%s publishing on %s: %v", id, subject, err)
	case <-time.After(time.Second): // the violation comes before the flush's pong; this waits for nothing
	}
	return ""
}

// partnerInbox is what a partner organisation received on its subjects, as itself.
type partnerInbox struct {
	mu       sync.Mutex
	subjects []string
}

func listenAs(t *testing.T, s *stack.Stack, org string) *partnerInbox {
	t.Helper()
	in := &partnerInbox{}
	nc := natsAs(t, s, natsauth.PartnerIdentity(org))
	if _, err := nc.Subscribe(partners.PartnerSubjects(org), func(m *nats.Msg) {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.subjects = append(in.subjects, m.Subject)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *partnerInbox) of(crisisID string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for _, s := range in.subjects {
		if strings.Contains(s, "."+crisisID+".") {
			out = append(out, s)
		}
	}
	return out
}

func partnerCount(t *testing.T, js jetstream.JetStream, org, crisisID, token string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), partners.PartnerStream(org))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(fmt.Sprintf("%s.%s.*.*.%s.%s", partners.SubjectRoot, org, crisisID, token)))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func waitPartner(t *testing.T, js jetstream.JetStream, org, crisisID, token string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for partnerCount(t, js, org, crisisID, token) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s never received %s of %s", org, token, crisisID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
