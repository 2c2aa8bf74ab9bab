package natsauth_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/demarche/demarche/pkg/natsauth"
)

// allowed tells whether p lets its holder publish on subject (no wildcards):
// an allow matches and no deny does, as nats-server decides.
func allowed(p natsauth.Permissions, subject string) bool {
	match := func(list []string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return natsauth.Overlap(s, subject) })
	}
	return match(p.Publish) && !match(p.PublishDeny)
}

func subscribes(p natsauth.Permissions, subject string) bool {
	return slices.ContainsFunc(p.Subscribe, func(s string) bool { return natsauth.Overlap(s, subject) })
}

// consumerVerbs are the subjects that create (or update), delete, pull from
// and acknowledge consumer c, as clients send them.
func consumerVerbs(c natsauth.Consumer) map[string]string {
	return map[string]string{
		"create":            "$JS.API.CONSUMER.CREATE." + c.String(),
		"create filtered":   "$JS.API.CONSUMER.CREATE." + c.String() + ".demarche.crisis.africa.>",
		"create durable":    "$JS.API.CONSUMER.DURABLE.CREATE." + c.String(),
		"delete":            "$JS.API.CONSUMER.DELETE." + c.String(),
		"pull":              "$JS.API.CONSUMER.MSG.NEXT." + c.String(),
		"acknowledge":       "$JS.ACK." + c.String() + ".1.7.42.1765000000000000000.0",
		"read the state of": "$JS.API.CONSUMER.INFO." + c.String(),
	}
}

// TestOnlyTheOwnerTouchesADurable: no identity but its owner may create,
// update, delete, pull from or acknowledge a durable consumer; the owner may
// (but the legacy durable-create form, which nobody needs).
func TestOnlyTheOwnerTouchesADurable(t *testing.T) {
	outside := natsauth.DeployIdentities()
	all := append(slices.Clone(natsauth.Identities), outside...)
	durables := natsauth.AllDurables(natsauth.DefaultPartners)
	for _, must := range []natsauth.Consumer{{natsauth.CrisisStream, "audit"}, {natsauth.CrisisStream, "eventlog"}, {natsauth.CrisisStream, "partners"},
		{natsauth.SignalsStream, "earlywarning-signals"}, {natsauth.PartnerStream("AU"), "partners-webhook-AU"}, {natsauth.PartnerStream("AU"), "AU"}} {
		found := false
		for _, cs := range durables {
			found = found || slices.Contains(cs, must)
		}
		if !found {
			t.Errorf("durable %s is in no identity's list", must)
		}
	}
	for owner, cs := range durables {
		for _, c := range cs {
			for verb, subject := range consumerVerbs(c) {
				for _, id := range all {
					if id == natsauth.Provisioner {
						continue // manages everything
					}
					got := allowed(natsauth.PermissionsOf(id, outside...), subject)
					want := id == owner && verb != "create durable" ||
						verb == "read the state of" && (slices.Contains(natsauth.ConsumerWatchers, id) || slices.Contains(natsauth.ConsumerReads[id], c))
					if _, partner := owner.Partner(); partner && id == owner {
						continue // PartnerPermissions: its one consumer, with its own filter alone
					}
					if got != want {
						t.Errorf("%s may %s %s (%s): %v, want %v (owner %s)", id, verb, c, subject, got, want, owner)
					}
				}
			}
		}
	}
}

// TestOrderedConsumersButNoOneElses: the identities that run ordered
// consumers may make them under library-made names, on their streams alone,
// in the forms that name them; the legacy ephemeral form (the name in the
// body, where no permission sees it) is nobody's.
func TestOrderedConsumersButNoOneElses(t *testing.T) {
	for id, streams := range natsauth.Ephemerals {
		p := natsauth.PermissionsOf(id)
		for _, stream := range streams {
			for _, s := range []string{"$JS.API.CONSUMER.CREATE." + stream + ".Xy3kQ_1", "$JS.API.CONSUMER.CREATE." + stream + ".Xy3kQ_2.demarche.crisis.>",
				"$JS.API.CONSUMER.MSG.NEXT." + stream + ".Xy3kQ_1", "$JS.API.CONSUMER.DELETE." + stream + ".Xy3kQ_1"} {
				if !allowed(p, s) {
					t.Errorf("%s may not %s", id, s)
				}
			}
			// Pagers (natscli's `stream view`) acknowledge their own pager
			// consumer; no one else acknowledges on these streams.
			pager := "$JS.ACK." + stream + ".stream_pager_12341765000000000000000.1.1.1.1765000000000000000.0"
			if got, want := allowed(p, pager), slices.Contains(natsauth.Pagers, id); got != want {
				t.Errorf("%s may acknowledge its stream_pager consumer on %s: %v, want %v", id, stream, got, want)
			}
			// nats-server also takes acknowledgements in its v2 form,
			// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>...: none
			// of the pagers' grants reaches another's consumer that way.
			for owner, cs := range natsauth.AllDurables(natsauth.DefaultPartners) {
				for _, c := range cs {
					v2 := "$JS.ACK._.Xk2mQ9aB." + c.String() + ".1.7.42.1765000000000000000.0.Zq"
					if owner != id && allowed(p, v2) {
						t.Errorf("%s may acknowledge %s's consumer %s in the v2 form (%s)", id, owner, c, v2)
					}
				}
			}
		}
		if allowed(p, "$JS.API.CONSUMER.CREATE."+natsauth.PartnerStream("AU")+".Xy3kQ_1") {
			t.Errorf("%s may make consumers on the partner stream", id)
		}
	}
	for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		p := natsauth.PermissionsOf(id)
		for _, stream := range []string{natsauth.CrisisStream, natsauth.AuditStream, natsauth.PartnerStream("AU"), natsauth.KV(natsauth.RosterBucket)} {
			if id != natsauth.Provisioner && allowed(p, "$JS.API.CONSUMER.CREATE."+stream) {
				t.Errorf("%s may use the legacy ephemeral create form on %s", id, stream)
			}
		}
	}
}

// TestEveryInboxIsItsOwn: each identity subscribes to its own inbox prefix
// alone, never to _INBOX.> or another's; responders answer their callers.
func TestEveryInboxIsItsOwn(t *testing.T) {
	all := append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...)
	for _, id := range all {
		p := natsauth.PermissionsOf(id)
		mine := natsauth.InboxPrefix(id)
		if mine != "_INBOX_"+string(id) {
			t.Errorf("%s's inbox prefix is %s", id, mine)
		}
		if !subscribes(p, mine+".abc.1") {
			t.Errorf("%s cannot read its own inbox", id)
		}
		if subscribes(p, "_INBOX.abc") {
			t.Errorf("%s may read the shared _INBOX", id)
		}
		for _, s := range p.Subscribe {
			if strings.HasPrefix(s, "_INBOX") && s != mine+".>" || s == ">" || strings.HasPrefix(s, "*") {
				t.Errorf("%s subscribes to %s", id, s)
			}
		}
		for _, other := range all {
			if other != id && subscribes(p, natsauth.InboxPrefix(other)+".abc") {
				t.Errorf("%s may read %s's inbox", id, other)
			}
		}
	}
	// The roster answers the worker and the gateway, not the partners service
	// (which never calls it); the worker answers nobody.
	if !allowed(natsauth.PermissionsOf(natsauth.Roster), "_INBOX_worker.abc") || !allowed(natsauth.PermissionsOf(natsauth.Roster), "_INBOX_gateway.abc") {
		t.Error("the roster cannot answer its callers")
	}
	if allowed(natsauth.PermissionsOf(natsauth.Roster), "_INBOX_partners.abc") || allowed(natsauth.PermissionsOf(natsauth.Worker), "_INBOX_gateway.abc") {
		t.Error("replies go to identities that never ask")
	}
}

// TestMoneyAndBookingsMoveForTheWorkerAlone.
func TestMoneyAndBookingsMoveForTheWorkerAlone(t *testing.T) {
	for _, subject := range []string{"demarche.funding.request", "demarche.funding.decide", "demarche.funding.disburse", "demarche.roster.reserve", "demarche.roster.release"} {
		for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
			if got := allowed(natsauth.PermissionsOf(id), subject); got != (id == natsauth.Worker) {
				t.Errorf("%s may request %s: %v", id, subject, got)
			}
		}
	}
	// Contributions come in through the gateway alone (it checks the role and
	// stamps who); the funding service alone has them recorded on the chain.
	for _, tc := range []struct {
		subject string
		only    natsauth.Identity
	}{
		{"demarche.funding.contribute", natsauth.Gateway},
		{"demarche.audit.fund-contribution", natsauth.Funding},
	} {
		for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
			if got := allowed(natsauth.PermissionsOf(id), tc.subject); got != (id == tc.only || (id == natsauth.Audit && strings.HasPrefix(tc.subject, "demarche.audit."))) {
				t.Errorf("%s may request %s: %v", id, tc.subject, got)
			}
		}
	}
	if !allowed(natsauth.PermissionsOf(natsauth.Funding), "_INBOX_gateway.abc") || !allowed(natsauth.PermissionsOf(natsauth.Audit), "_INBOX_funding.abc") {
		t.Error("a contribution's answers cannot reach the gateway, or the audit record's the funding service")
	}
	for _, subject := range []string{"demarche.funding.balance", "demarche.funding.ledger", "demarche.roster.search", "demarche.roster.assignments", "demarche.roster.experts"} {
		for _, id := range []natsauth.Identity{natsauth.Worker, natsauth.Gateway, natsauth.Operator, natsauth.Observer} {
			if !allowed(natsauth.PermissionsOf(id), subject) {
				t.Errorf("%s may not read %s", id, subject)
			}
		}
	}
}

// TestChainsAreReadThroughTheGateway: the audit service records a read
// under the reader its request names; only the gateway, which takes that
// name from a verified token, may ask (a NATS caller's name would be its body's).
func TestChainsAreReadThroughTheGateway(t *testing.T) {
	for _, subject := range []string{"demarche.audit.chain", "demarche.audit.heads", "demarche.audit.read"} {
		for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
			if got := allowed(natsauth.PermissionsOf(id), subject); got != (id == natsauth.Gateway || id == natsauth.Audit) { // audit writes demarche.audit.> itself
				t.Errorf("%s may request %s: %v", id, subject, got)
			}
		}
	}
}

// TestObserverReadsOnly: the observer writes nothing, edits, deletes, pulls
// from and acknowledges no consumer of anyone's (it acknowledges only its own
// pager consumers: nats stream view).
func TestObserverReadsOnly(t *testing.T) {
	p := natsauth.PermissionsOf(natsauth.Observer)
	for _, s := range p.Publish {
		if strings.HasPrefix(s, "$JS.ACK") && !(strings.HasSuffix(s, ".*.>") && slices.Contains(natsauth.Ephemerals[natsauth.Observer], strings.TrimSuffix(strings.TrimPrefix(s, "$JS.ACK."), ".*.>"))) {
			t.Errorf("the observer may acknowledge on %s (its own pager consumers on its streams alone)", s)
		}
		if strings.HasPrefix(s, "$KV.") || strings.HasPrefix(s, "demarche.") && !slices.Contains([]string{"demarche.audit.chain", "demarche.audit.heads",
			"demarche.schema.>", "demarche.roster.search", "demarche.roster.assignments", "demarche.roster.experts", "demarche.funding.balance", "demarche.funding.ledger",
			"demarche.earlywarning.score"}, s) {
			t.Errorf("the observer may publish on %s", s)
		}
	}
	for _, s := range []string{"$JS.API.STREAM.MSG.GET." + natsauth.LedgerStream, "$JS.API.DIRECT.GET.KV_DEMARCHE_FUNDING.$KV.DEMARCHE_FUNDING.paid.x",
		"$JS.API.STREAM.PURGE." + natsauth.CrisisStream, "$JS.API.STREAM.MSG.DELETE." + natsauth.AuditStream, "demarche.crisis.africa.GN.GN-1.crisis_closed",
		"$KV.DEMARCHE_ROSTER.booked.x", "demarche.audit.read", "demarche.signals.acled"} {
		if allowed(p, s) {
			t.Errorf("the observer may publish on %s", s)
		}
	}
}

// TestMessageReadsWhereNeeded: STREAM.MSG.GET and DIRECT.GET are the owners'.
func TestMessageReadsWhereNeeded(t *testing.T) {
	for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		if id == natsauth.Provisioner {
			continue
		}
		for _, s := range natsauth.PermissionsOf(id).Publish {
			if !strings.HasPrefix(s, "$JS.API.STREAM.MSG.GET.") && !strings.HasPrefix(s, "$JS.API.DIRECT.GET.") {
				continue
			}
			stream := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "$JS.API.STREAM.MSG.GET."), "$JS.API.DIRECT.GET."), ".>")
			if strings.Contains(stream, "*") || !slices.Contains(natsauth.MessageReads[id], stream) {
				t.Errorf("%s may read messages of %s (%s)", id, stream, s)
			}
		}
	}
	// The claims bucket: the gateway reads a claim key by key; nobody else
	// reads (the provisioner's JetStream API aside) or writes it.
	claim := "$JS.API.DIRECT.GET.KV_DEMARCHE_CLAIMS.$KV.DEMARCHE_CLAIMS.CR-1.triage"
	for _, id := range append(slices.Clone(natsauth.Identities), natsauth.DeployIdentities()...) {
		if got := allowed(natsauth.PermissionsOf(id), claim); got != (id == natsauth.Gateway || id == natsauth.Provisioner) {
			t.Errorf("%s reads a claim: %v", id, got)
		}
		if got := allowed(natsauth.PermissionsOf(id), "$KV.DEMARCHE_CLAIMS.CR-1.triage"); got != (id == natsauth.Gateway) {
			t.Errorf("%s writes a claim: %v", id, got)
		}
	}
	if allowed(natsauth.PermissionsOf(natsauth.Roster), "$JS.API.DIRECT.GET.KV_DEMARCHE_FUNDING.$KV.DEMARCHE_FUNDING.paid.x") {
		t.Error("the roster may read funding's bucket")
	}
}

// TestAuditWatchesEveryConsumer: wall 6 watches consumers from the audit service.
func TestAuditWatchesEveryConsumer(t *testing.T) {
	p := natsauth.PermissionsOf(natsauth.Audit)
	for _, s := range []string{"$JS.API.CONSUMER.INFO." + natsauth.CrisisStream + ".eventlog", "$JS.API.CONSUMER.INFO." + natsauth.PartnerStream("AU") + ".partners-webhook-AU",
		"$JS.API.CONSUMER.LIST." + natsauth.SignalsStream, "$JS.API.CONSUMER.NAMES." + natsauth.CrisisStream} {
		if !allowed(p, s) {
			t.Errorf("audit may not %s", s)
		}
	}
	if allowed(natsauth.PermissionsOf(natsauth.Roster), "$JS.API.CONSUMER.INFO."+natsauth.CrisisStream+".audit") {
		t.Error("the roster reads the audit consumer's state")
	}
}

func TestOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true}, {"a.*", "a.b", true}, {"a.>", "a.b.c", true}, {"a.>", "a", false}, {"a.b", "a.b.c", false},
		{"a.*.c", "a.b.*", true}, {"_INBOX_worker.>", "_INBOX.>", false}, {"$SRV.>", "$SRV.PING", true},
	} {
		if got := natsauth.Overlap(c.a, c.b); got != c.want {
			t.Errorf("Overlap(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

// TestBackupForTheProvisionerRestoreForTheRestorer: `demarche admin backup`
// (and `nats stream backup`) acknowledges the snapshot's chunks on
// $JS.SNAPSHOT.ACK, as the provisioner; `demarche admin restore` (and
// `nats stream restore`) asks on $JS.API.STREAM.RESTORE and sends the chunks
// on $JS.SNAPSHOT.RESTORE, as the restorer alone (a restore replaces history:
// its own credential). Without them a backup stalls past the server's window
// and a restore times out. Nobody else may; the restorer may do nothing else
// with JetStream than read stream information.
func TestBackupForTheProvisionerRestoreForTheRestorer(t *testing.T) {
	outside := natsauth.DeployIdentities()
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		p := natsauth.PermissionsOf(id, outside...)
		for _, c := range []struct {
			subject string
			who     natsauth.Identity
		}{
			{"$JS.SNAPSHOT.ACK." + natsauth.AuditStream + ".OkQGW5l1N86lZEi8Ap8aPn.1024.38", natsauth.Provisioner},
			{"$JS.API.STREAM.SNAPSHOT." + natsauth.LedgerStream, natsauth.Provisioner},
			{"$JS.API.STREAM.RESTORE." + natsauth.LedgerStream, natsauth.Restorer},
			{"$JS.API.STREAM.RESTORE." + natsauth.CrisisStream, natsauth.Restorer},
			{"$JS.SNAPSHOT.RESTORE." + natsauth.LedgerStream + ".OkQGW5l1N86lZEi8Ap8cKF", natsauth.Restorer},
		} {
			want := id == c.who || (id == natsauth.Provisioner && strings.HasPrefix(c.subject, "$JS.API.")) // the provisioner's $JS.API.>
			if got := allowed(p, c.subject); got != want {
				t.Errorf("%s may publish on %s: %v, want %v", id, c.subject, got, want)
			}
		}
	}
	r := natsauth.PermissionsOf(natsauth.Restorer)
	for _, s := range []string{"$JS.API.STREAM.CREATE." + natsauth.LedgerStream, "$JS.API.STREAM.DELETE." + natsauth.LedgerStream,
		"$JS.API.STREAM.PURGE." + natsauth.AuditStream, "$JS.API.STREAM.SNAPSHOT." + natsauth.AuditStream,
		"$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream + ".x", "demarche.crisis.x", "$JS.ACK." + natsauth.CrisisStream + ".audit.>"} {
		if allowed(r, s) {
			t.Errorf("the restorer may publish on %s: it needs only the restore subjects", s)
		}
	}
	for _, s := range []string{"$JS.API.STREAM.INFO." + natsauth.LedgerStream, "$JS.API.STREAM.NAMES"} {
		if !allowed(r, s) {
			t.Errorf("the restorer may not publish on %s: a restore checks what the server holds", s)
		}
	}
}

// TestFundOpeningForTheProvisionerAlone: opening a fund (demarche admin
// open-fund) writes its opening line and marker and asks audit to record the
// act; only the provisioner may, besides funding on its own ledgers and
// bucket, and only the provisioner may ask audit to record an opening (so the
// record's principal comes from the credentials, not from the body). The
// provisioner writes no other funding key (requests, paid keys).
func TestFundOpeningForTheProvisionerAlone(t *testing.T) {
	outside := natsauth.DeployIdentities()
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		p := natsauth.PermissionsOf(id, outside...)
		for s, want := range map[string]bool{
			"demarche.ledger.new-fund":           id == natsauth.Provisioner || id == natsauth.Funding,
			"$KV.DEMARCHE_FUNDING.fund.new-fund": id == natsauth.Provisioner || id == natsauth.Funding,
			"$KV.DEMARCHE_FUNDING.paid.k1":       id == natsauth.Funding,
			"$KV.DEMARCHE_FUNDING.req.GN-1.r1":   id == natsauth.Funding,
			"demarche.audit.fund-opened":         id == natsauth.Provisioner || id == natsauth.Audit,
			"demarche.audit.operation":           id == natsauth.Worker || id == natsauth.Audit,
		} {
			if got := allowed(p, s); got != want {
				t.Errorf("%s may publish on %s: %v, want %v", id, s, got, want)
			}
		}
	}
}

// TestSituationsListIsTheGatewaysAlone: the early-warning situations list
// (the console's inbox) is asked by the gateway, which cuts each situation's
// crises to the reader's clearance; the read-only identities that may read a
// score may not list situations.
func TestSituationsListIsTheGatewaysAlone(t *testing.T) {
	if !allowed(natsauth.PermissionsOf(natsauth.Gateway), "demarche.earlywarning.situations") {
		t.Error("the gateway may not list situations")
	}
	for _, id := range []natsauth.Identity{natsauth.Observer, natsauth.Operator, natsauth.Subscriber} {
		if allowed(natsauth.PermissionsOf(id), "demarche.earlywarning.situations") {
			t.Errorf("%s may list situations", id)
		}
	}
}

// TestRulesApplyForTheGatewayAndEarlyWarningAlone: rules are put into force
// by the gateway asking early warning (for the head of department it
// authenticated); early warning alone writes the rules bucket and asks audit
// to record the change (so the record's principal is the one the gateway
// authenticated, never a NATS caller's word).
func TestRulesApplyForTheGatewayAndEarlyWarningAlone(t *testing.T) {
	outside := natsauth.DeployIdentities()
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		p := natsauth.PermissionsOf(id, outside...)
		for s, want := range map[string]bool{
			"demarche.earlywarning.rules":      id == natsauth.Gateway,
			"$KV.EARLYWARNING_RULES.active":    id == natsauth.EarlyWarning,
			"demarche.audit.rules-changed":     id == natsauth.EarlyWarning || id == natsauth.Audit,
			"$KV.EARLYWARNING_SITUATIONS.GN-x": id == natsauth.EarlyWarning,
			// Early-warning dialogues: asked by the gateway alone (who is
			// stamped from the credential), kept and audited by early warning.
			"demarche.earlywarning.dialogue":  id == natsauth.Gateway,
			"$KV.EARLYWARNING_DIALOGUES.GN-x": id == natsauth.EarlyWarning,
			"demarche.audit.warning-dialogue": id == natsauth.EarlyWarning || id == natsauth.Audit,
		} {
			if got := allowed(p, s); got != want {
				t.Errorf("%s may publish on %s: %v, want %v", id, s, got, want)
			}
		}
	}
}

// TestBenchHasItsOwnRightsAlone: demarche bench's identity may run its bare
// baselines (bench.>, its own stream BENCH_BARE, made and removed by itself),
// make, pull from and acknowledge fan-out durables of its own naming on the
// crisis stream, and read early warning's consumer's state; nobody else may
// touch its stream, and it may not touch the durables others own, edit any
// other stream, or publish anything a service reads.
func TestBenchHasItsOwnRightsAlone(t *testing.T) {
	outside := natsauth.DeployIdentities()
	b := natsauth.PermissionsOf(natsauth.Bench, outside...)
	for _, s := range []string{
		"bench.ingest.x", "$JS.API.STREAM.CREATE." + natsauth.BenchStream, "$JS.API.STREAM.DELETE." + natsauth.BenchStream,
		"$JS.API.CONSUMER.CREATE." + natsauth.BenchStream + ".ingest-1a2b", "$JS.ACK." + natsauth.BenchStream + ".ingest-1a2b.1.2.3.4.0",
		"$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream + ".bench-fanout-1a2b3c-0", "$JS.API.CONSUMER.MSG.NEXT." + natsauth.CrisisStream + ".bench-fanout-1a2b3c-0",
		"$JS.ACK." + natsauth.CrisisStream + ".bench-fanout-1a2b3c-0.1.2.3.4.0", "$JS.API.CONSUMER.DELETE." + natsauth.CrisisStream + ".bench-fanout-1a2b3c-0",
		"$JS.API.CONSUMER.INFO." + natsauth.SignalsStream + ".earlywarning-signals", "$JS.API.STREAM.INFO." + natsauth.SignalsStream,
	} {
		if !allowed(b, s) {
			t.Errorf("the bench may not publish on %s: a scenario needs it", s)
		}
	}
	if !subscribes(b, "bench.fanout.x") {
		t.Error("the bench may not subscribe to its own subjects")
	}
	for _, s := range []string{
		"$JS.API.STREAM.CREATE." + natsauth.CrisisStream, "$JS.API.STREAM.DELETE." + natsauth.SignalsStream, "$JS.API.STREAM.PURGE." + natsauth.BenchStream,
		"$JS.API.STREAM.CREATE.FORGED", "demarche.crisis.africa.GN.GN-FORGED.crisis_opened", natsauth.SignalsOperatorSubject, "demarche.signals.acled",
		"$JS.API.CONSUMER.CREATE." + natsauth.CrisisStream + ".audit", "$JS.API.CONSUMER.DELETE." + natsauth.CrisisStream + ".eventlog",
		"$JS.API.CONSUMER.MSG.NEXT." + natsauth.CrisisStream + ".partners", "$JS.ACK." + natsauth.CrisisStream + ".audit.1.2.3.4.0",
		"$JS.API.CONSUMER.MSG.NEXT." + natsauth.SignalsStream + ".earlywarning-signals", "$JS.API.CONSUMER.CREATE." + natsauth.LedgerStream + ".x",
		"$KV.EARLYWARNING_SITUATIONS.x", "$JS.ACK._.Xk2mQ9aB." + natsauth.CrisisStream + ".audit.1.7.42.1765000000000000000.0.Zq",
	} {
		if allowed(b, s) {
			t.Errorf("the bench may publish on %s", s)
		}
	}
	if subscribes(b, "demarche.crisis.africa.GN.GN-1.crisis_opened") {
		t.Error("the bench subscribes to crisis events: it reads them through its own consumers alone")
	}
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		if id == natsauth.Bench || id == natsauth.Provisioner {
			continue
		}
		p := natsauth.PermissionsOf(id, outside...)
		for _, s := range []string{"$JS.API.STREAM.CREATE." + natsauth.BenchStream, "$JS.API.STREAM.DELETE." + natsauth.BenchStream, "bench.ingest.x"} {
			if allowed(p, s) {
				t.Errorf("%s may publish on %s, the bench's", id, s)
			}
		}
	}
}

// TestEarlyWarningReadsOpeningsAndClosingsAlone: early warning's index of
// open crises (EventReads) reads the crisis stream's CrisisOpened and
// CrisisClosed events through ordered consumers filtered to those two types:
// no other filter, no unfiltered consumer, no other identity's durable; and
// no other identity gains anything on the crisis stream from it.
func TestEarlyWarningReadsOpeningsAndClosingsAlone(t *testing.T) {
	const stream = natsauth.CrisisStream
	create := "$JS.API.CONSUMER.CREATE." + stream + "."
	outside := natsauth.DeployIdentities()
	for _, id := range append(slices.Clone(natsauth.Identities), outside...) {
		p := natsauth.PermissionsOf(id, outside...)
		ew := id == natsauth.EarlyWarning
		prov := id == natsauth.Provisioner // manages every stream: $JS.API.>
		// Those with ordered consumers of any filter on the stream already.
		anyFilter := slices.Contains(natsauth.Ephemerals[id], stream) || slices.Contains(natsauth.OwnDurables[id], stream)
		for s, want := range map[string]bool{
			create + "Xy3kQ_1.demarche.crisis.*.*.*.crisis_opened":        ew || prov || anyFilter,
			create + "Xy3kQ_2.demarche.crisis.*.*.*.crisis_closed":        ew || prov || anyFilter,
			create + "Xy3kQ_3.demarche.crisis.africa.ML.C1.crisis_opened": ew || prov || anyFilter,
			create + "Xy3kQ_4.demarche.crisis.*.*.*.stage_entered":        prov || anyFilter,
			create + "Xy3kQ_5": prov || anyFilter,
			create + "audit.demarche.crisis.*.*.*.crisis_opened":         prov || id == natsauth.Audit,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + ".Xy3kQ_1":           ew || prov || anyFilter,
			"$JS.API.CONSUMER.INFO." + stream + ".Xy3kQ_1":               ew || prov || anyFilter || slices.Contains(natsauth.ConsumerWatchers, id),
			"$JS.API.CONSUMER.DELETE." + stream + ".Xy3kQ_1":             ew || prov || anyFilter,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + ".audit":             prov || id == natsauth.Audit,
			"$JS.API.CONSUMER.DELETE." + stream + ".eventlog":            prov || id == natsauth.EventLog,
			"$JS.ACK." + stream + ".Xy3kQ_1.1.1.1.1765000000000000000.0": anyFilter && (slices.Contains(natsauth.Pagers, id) || slices.Contains(natsauth.OwnDurables[id], stream)),
		} {
			if got := allowed(p, s); got != want {
				t.Errorf("%s may publish on %s: %v, want %v", id, s, got, want)
			}
		}
	}
}
