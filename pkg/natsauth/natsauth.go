// Package natsauth is who may do what on NATS: one identity per service, and
// one table of subject permissions (Table) from which the embedded server of
// `demarche dev` and the production server configuration (deploy/nats) are
// both derived.
//
// Each service publishes only what it owns: only the worker publishes crisis
// events (early warning its WarningRaised alone), only funding writes the
// ledgers, only audit writes the audit chains, only partners writes partner
// subjects, each service writes its own buckets. No identity but the
// provisioner may create, edit, purge or delete a stream or a bucket: services
// get read-only JetStream API rights and the rights to run their consumers.
package natsauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Identity is a NATS user.
type Identity string

// The identities. Operator is the CLI's own NATS identity in `demarche dev`
// (its direct NATS verbs: roster, fund, warning, partner, audit, events tail);
// Observer is read-only, for natscli.
const (
	Provisioner  Identity = "provisioner"
	Worker       Identity = "worker"
	EventLog     Identity = "eventlog"
	Roster       Identity = "roster"
	Funding      Identity = "funding"
	Partners     Identity = "partners"
	EarlyWarning Identity = "earlywarning"
	Audit        Identity = "audit"
	Gateway      Identity = "gateway"
	Schema       Identity = "schema"
	Operator     Identity = "operator"
	Observer     Identity = "observer"
)

// Identities lists every identity, in a stable order.
var Identities = []Identity{Provisioner, Worker, EventLog, Roster, Funding, Partners, EarlyWarning, Audit, Gateway, Schema, Operator, Observer}

// Access is publish, subscribe, or both.
type Access int

// Access kinds.
const (
	Pub Access = 1 << iota
	Sub
)

// Rule allows identities to publish and/or subscribe on a subject.
type Rule struct {
	Subject string
	Access  Access
	Who     []Identity
	Why     string
}

var (
	services  = []Identity{Worker, EventLog, Roster, Funding, Partners, EarlyWarning, Audit, Gateway, Schema}
	everyone  = append(slices.Clone(services), Provisioner, Operator, Observer)
	consumers = []Identity{EventLog, Roster, Funding, Partners, EarlyWarning, Audit, Operator, Observer}
	// responders answer NATS micro requests.
	responders = []Identity{Roster, Funding, Partners, EarlyWarning, Audit, Schema}
	// readers may ask the read-only endpoints (and see the events).
	readers = []Identity{Worker, Gateway, Operator, Observer}
	callers = []Identity{Worker, Gateway, Operator}
)

// Table is every permission there is. Anything not allowed here is refused.
var Table = []Rule{
	// Connections.
	{"_INBOX.>", Sub, everyone, "replies to requests, JetStream API answers, ordered consumers' deliveries"},
	{"_INBOX.>", Pub, responders, "micro services answer requests"},
	{"$SRV.>", Sub, responders, "micro discovery (nats micro ls)"},
	{"$SRV.>", Pub, []Identity{Operator, Observer}, "micro discovery (nats micro ls)"},

	// JetStream: the provisioner alone manages streams and buckets.
	{"$JS.API.>", Pub, []Identity{Provisioner}, "create and update streams and buckets at start-up"},
	{"$JS.API.INFO", Pub, everyone, "account info"},
	{"$JS.API.STREAM.INFO.*", Pub, everyone, "bind to a stream or bucket"},
	{"$JS.API.STREAM.NAMES", Pub, everyone, "list streams"},
	{"$JS.API.STREAM.LIST", Pub, everyone, "list streams"},
	{"$JS.API.STREAM.MSG.GET.*", Pub, everyone, "read a message (ledger tail, KV get)"},
	{"$JS.API.DIRECT.GET.>", Pub, everyone, "read a message directly (KV get)"},
	{"$JS.API.CONSUMER.INFO.>", Pub, everyone, "consumer state"},
	{"$JS.API.CONSUMER.NAMES.*", Pub, everyone, "list consumers"},
	{"$JS.API.CONSUMER.LIST.*", Pub, everyone, "list consumers"},
	{"$JS.API.CONSUMER.CREATE.>", Pub, consumers, "durable and ordered consumers (KV listing too)"},
	{"$JS.API.CONSUMER.DURABLE.CREATE.>", Pub, consumers, "durable consumers (older clients)"},
	{"$JS.API.CONSUMER.DELETE.>", Pub, consumers, "ordered consumers clean up"},
	{"$JS.API.CONSUMER.MSG.NEXT.>", Pub, consumers, "pull the next message"},
	{"$JS.ACK.>", Pub, consumers, "acknowledge"},
	{"$JS.FC.>", Pub, consumers, "flow control of push (ordered) consumers"},

	// Events.
	{"demarche.crisis.>", Pub, []Identity{Worker}, "only the worker publishes crisis events"},
	{"demarche.crisis.*.*.*.warning_raised", Pub, []Identity{EarlyWarning}, "early warning's WarningRaised, nothing else"},
	{"demarche.>", Sub, []Identity{Operator, Observer}, "watch everything (events tail, nats sub)"},
	{"demarche.crisis.>", Sub, []Identity{Gateway}, "the console's live updates (filtered per principal before they leave)"},
	{"demarche.dlq.eventlog", Pub, []Identity{EventLog}, "its dead letters"},
	{"demarche.dlq.audit", Pub, []Identity{Audit}, "its dead letters"},
	{"demarche.dlq.partners", Pub, []Identity{Partners}, "its dead letters"},
	{"demarche.dlq.*", Pub, []Identity{Partners}, "its webhooks' dead letters (demarche.dlq.partners-webhook-<PARTNER>: wildcards are whole tokens)"},
	{"demarche.dlq.earlywarning-signals", Pub, []Identity{EarlyWarning}, "its dead letters"},
	{"demarche.ledger.>", Pub, []Identity{Funding}, "only funding writes ledgers"},
	{"demarche.audit.>", Pub, []Identity{Audit}, "only audit writes audit chains"},
	{"demarche.partner.>", Pub, []Identity{Partners}, "only partners delivers to partners"},
	{SignalsOperatorSubject, Pub, []Identity{Operator}, "the operator's own signals, recorded as the operator's (sources publish on demarche.signals.<source> as demarche-signals-<source>: SignalSourcePermissions)"},

	// Buckets: each service writes its own.
	{"$KV.DEMARCHE_ROSTER.>", Pub, []Identity{Roster}, "experts and bookings"},
	{"$KV.DEMARCHE_FUNDING.>", Pub, []Identity{Funding}, "requests and paid keys"},
	{"$KV.DEMARCHE_PARTNER_CRISES.>", Pub, []Identity{Partners}, "crises partners know"},
	{"$KV.DEMARCHE_PARTNER_PENDING.>", Pub, []Identity{Partners}, "events waiting for their opening"},
	{"$KV.EARLYWARNING_SIGNALS.>", Pub, []Identity{EarlyWarning}, "signals seen"},
	{"$KV.EARLYWARNING_SITUATIONS.>", Pub, []Identity{EarlyWarning}, "situations"},

	// Requests (NATS micro): the service listens, its callers ask.
	{"demarche.roster.>", Sub, []Identity{Roster}, "roster endpoints"},
	{"demarche.roster.>", Pub, callers, "search, reserve, release"},
	{"demarche.funding.>", Sub, []Identity{Funding}, "funding endpoints"},
	{"demarche.funding.>", Pub, callers, "request, decide, disburse"},
	{"demarche.earlywarning.>", Sub, []Identity{EarlyWarning}, "early-warning endpoints"},
	{"demarche.earlywarning.>", Pub, []Identity{Gateway}, "ingest (a person's signals, stamped by the gateway with its principal: early warning trusts no other caller on it), score"},
	{"demarche.partners.>", Sub, []Identity{Partners}, "partner endpoints"},
	{"demarche.partners.>", Pub, []Identity{Gateway, Operator}, "role acknowledgements"},
	{"demarche.audit.>", Sub, []Identity{Audit}, "audit endpoints (chain, heads)"},
	{"demarche.audit.chain", Pub, []Identity{Gateway, Operator, Observer}, "read a chain"},
	{"demarche.audit.heads", Pub, []Identity{Gateway, Operator, Observer}, "read chain heads"},
	{"demarche.audit.read", Pub, []Identity{Gateway}, "record a read of a restricted or confidential crisis"},
	{"demarche.audit.operation", Pub, []Identity{Worker}, "record a terminate, cancel or reset of a crisis workflow, found in its history (services/audit.AppendOperation)"},
	{"demarche.schema.>", Sub, []Identity{Schema}, "schema endpoints (get, asyncapi)"},
	{"demarche.schema.>", Pub, []Identity{Gateway, Operator, Observer}, "fetch a schema or the AsyncAPI document (subscribers decode with it)"},
	{"demarche.roster.search", Pub, readers, "read-only"},
	{"demarche.roster.assignments", Pub, readers, "read-only"},
	{"demarche.roster.experts", Pub, readers, "read-only"},
	{"demarche.funding.balance", Pub, readers, "read-only"},
	{"demarche.funding.ledger", Pub, readers, "read-only"},
	{"demarche.earlywarning.score", Pub, readers, "read-only"},
}

// Permissions are the subjects an identity may publish and subscribe to.
type Permissions struct {
	Publish, Subscribe []string
}

// PermissionsOf derives an identity's permissions from Table (a partner
// organisation's or a signal source's from PartnerPermissions and
// SignalSourcePermissions).
func PermissionsOf(id Identity) Permissions {
	if org, ok := id.Partner(); ok {
		return PartnerPermissions(org)
	}
	if source, ok := id.SignalSource(); ok {
		return SignalSourcePermissions(source)
	}
	var p Permissions
	for _, r := range Table {
		if !slices.Contains(r.Who, id) {
			continue
		}
		if r.Access&Pub != 0 && !slices.Contains(p.Publish, r.Subject) {
			p.Publish = append(p.Publish, r.Subject)
		}
		if r.Access&Sub != 0 && !slices.Contains(p.Subscribe, r.Subject) {
			p.Subscribe = append(p.Subscribe, r.Subject)
		}
	}
	return p
}

// User is an identity's NATS user name: demarche-<identity>.
func (id Identity) User() string { return "demarche-" + string(id) }

// Credentials are an identity's user and password.
type Credentials struct {
	Identity Identity
	Password string
}

// FileName is where an identity's credentials live in a credentials folder.
func FileName(dir string, id Identity) string { return filepath.Join(dir, string(id)+".creds") }

// Ensure loads each identity's credentials from dir (Identities, then the
// extra ones: partner organisations, signal sources), generating (random,
// 256-bit) those missing, in files readable by their owner alone (0600).
func Ensure(dir string, extra ...Identity) (map[Identity]Credentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("credentials folder %s: %w", dir, err)
	}
	for _, id := range extra {
		if err := id.Check(); err != nil {
			return nil, err
		}
	}
	out := map[Identity]Credentials{}
	for _, id := range append(slices.Clone(Identities), extra...) {
		file := FileName(dir, id)
		c, err := Load(file)
		if errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			c = Credentials{Identity: id, Password: base64.RawURLEncoding.EncodeToString(b)}
			if err := os.WriteFile(file, []byte(c.Identity.User()+":"+c.Password+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write credentials %s: %w", file, err)
			}
		} else if err != nil {
			return nil, err
		}
		if c.Identity != id {
			return nil, fmt.Errorf("credentials %s are %s's, not %s's", file, c.Identity, id)
		}
		out[id] = c
	}
	return out, nil
}

// Load reads a credentials file: one line, "<user>:<password>".
func Load(file string) (Credentials, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Credentials{}, err
	}
	user, pw, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || !strings.HasPrefix(user, "demarche-") || pw == "" {
		return Credentials{}, fmt.Errorf("credentials %s: want one line <user>:<password>", file)
	}
	return Credentials{Identity: Identity(strings.TrimPrefix(user, "demarche-")), Password: pw}, nil
}

// URL returns the NATS URL with the credentials in it, the form every
// Démarche process (and natscli's --server) accepts. A cluster's seed list,
// comma-separated URLs, gets them in each URL.
func (c Credentials) URL(natsURL string) (string, error) {
	var out []string
	for _, one := range strings.Split(natsURL, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("NATS URL %q: want nats://host:port, or a cluster's seed list nats://host1:port,nats://host2:port", one)
		}
		u.User = url.UserPassword(c.Identity.User(), c.Password)
		out = append(out, u.String())
	}
	return strings.Join(out, ","), nil
}

// WithCredentialsFile returns natsURL with the credentials of file in it
// (natsURL unchanged when file is empty).
func WithCredentialsFile(natsURL, file string) (string, error) {
	if file == "" {
		return natsURL, nil
	}
	c, err := Load(file)
	if err != nil {
		return "", err
	}
	return c.URL(natsURL)
}

// ServerConfig is the nats-server `authorization` block equivalent to Table,
// for production (deploy/nats/authorization.conf). Each user's password is a
// variable, DEMARCHE_NATS_<IDENTITY>_PASSWORD, that the server reads from
// its environment; put a bcrypt hash there (`nats server passwd`).
func ServerConfig(extra ...Identity) string {
	var b strings.Builder
	b.WriteString("# Generated from pkg/natsauth.Table by `go test ./pkg/natsauth -run TestDeployConfig` with\n")
	b.WriteString("# DEMARCHE_UPDATE_DEPLOY=1. Do not edit: change the table.\n")
	b.WriteString("# Include it from nats-server.conf; set each DEMARCHE_NATS_<IDENTITY>_PASSWORD to a bcrypt hash.\n")
	b.WriteString("# Partner organisations (demarche-partner-<ORG>) and signal sources (demarche-signals-<source>)\n")
	b.WriteString("# connect from outside: give each its own password, and their clients the inbox prefix\n")
	b.WriteString("# _INBOX_partner-<ORG> / _INBOX_signals-<source> (natscli --inbox-prefix).\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, id := range append(slices.Clone(Identities), extra...) {
		p := PermissionsOf(id)
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n      permissions: {\n", id.User(), PasswordVariable(id))
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", quoteList(p.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", quoteList(p.Subscribe))
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// PasswordVariable names the environment variable holding an identity's
// password (hash) in the production server configuration.
func PasswordVariable(id Identity) string {
	return "DEMARCHE_NATS_" + strings.NewReplacer("-", "_").Replace(strings.ToUpper(string(id))) + "_PASSWORD"
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Partner organisations and signal sources from outside connect to NATS too,
// each as its own user (not in Table: they come from configuration).
//
// A partner organisation ORG (its registry code, e.g. ECOWAS) is the user
// demarche-partner-ORG. It reads its own subjects, demarche.partner.ORG.>, and
// nothing else: as a core subscription, or through its one durable consumer
// named ORG on its own stream DEMARCHE_PARTNER_ORG (PartnerStream), which
// holds its deliveries alone: the stream's info (subjects and their counts)
// tells it nothing of crises shared with other organisations, and it may ask
// no other stream's. Its replies come on its own inbox prefix (InboxPrefix),
// so it cannot read anyone else's replies either; it publishes nothing.
//
// A signal source SOURCE (e.g. acled) is the user demarche-signals-SOURCE. It
// publishes its signals on demarche.signals.SOURCE alone (JetStream stores
// them; the acknowledgement comes on its own inbox prefix) and reads nothing.
// The subject is its proof: early warning takes a stream signal's source from
// the subject it was published on, and refuses (dead letter) one whose body
// names another source. The operator identity publishes on
// demarche.signals.operator alone (SignalsOperatorSubject): its signals are
// recorded as the operator's, never as a source's.

// DefaultSignalSources are the signal sources `demarche dev` (and
// deploy/nats/authorization.conf) give a user each; production adds its own.
var DefaultSignalSources = []string{"acled", "ucdp", "ecowarn", "cewarn", "un-human-rights", "civil-society", "media"}

// DefaultPartners are the partner organisations of the embedded registry
// (services/partners; a test keeps them equal), in
// deploy/nats/authorization.conf.
var DefaultPartners = []string{"AU", "ECOWAS", "SADC", "IGAD", "EU", "OSCE", "OAS", "ASEAN", "PIF", "LAS"}

// DeployIdentities are the outside identities of deploy/nats/authorization.conf.
func DeployIdentities() []Identity {
	var out []Identity
	for _, org := range DefaultPartners {
		out = append(out, PartnerIdentity(org))
	}
	for _, src := range DefaultSignalSources {
		out = append(out, SignalSourceIdentity(src))
	}
	return out
}

// PartnerStream is the stream of one partner organisation's deliveries
// (services/partners.PartnerStream; a test keeps them equal).
func PartnerStream(org string) string { return "DEMARCHE_PARTNER_" + org }

// SignalsOperatorSubject is where the operator identity publishes signals:
// recorded as the operator's own ("operator"), it speaks for no source.
const SignalsOperatorSubject = "demarche.signals.operator"

// PartnerIdentity is a partner organisation's identity.
func PartnerIdentity(org string) Identity { return Identity("partner-" + org) }

// SignalSourceIdentity is a signal source's identity.
func SignalSourceIdentity(source string) Identity { return Identity("signals-" + source) }

// Partner is the organisation of a partner identity.
func (id Identity) Partner() (string, bool) { return strings.CutPrefix(string(id), "partner-") }

// SignalSource is the source of a signal-source identity.
func (id Identity) SignalSource() (string, bool) { return strings.CutPrefix(string(id), "signals-") }

// Check refuses an identity whose organisation or source is not one subject
// token of letters, digits and dashes (a wildcard or a dot would widen its rights).
func (id Identity) Check() error {
	name, ok := id.Partner()
	if !ok {
		name, ok = id.SignalSource()
	}
	if !ok {
		if slices.Contains(Identities, id) {
			return nil
		}
		return fmt.Errorf("NATS identity %q: not a service identity, partner-<ORG> or signals-<source>", id)
	}
	if name == "" {
		return fmt.Errorf("NATS identity %q: the organisation or source is empty", id)
	}
	if _, source := id.SignalSource(); source && name == "operator" {
		// demarche.signals.operator is the operator identity's: a source so
		// named would speak as the operator.
		return fmt.Errorf("NATS identity %q: the source name operator is the operator identity's", id)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("NATS identity %q: %q may hold letters, digits and dashes only", id, name)
		}
	}
	return nil
}

// InboxPrefix is the inbox prefix an identity's client must use
// (nats.CustomInboxPrefix, natscli --inbox-prefix): _INBOX for Démarche's own
// services, _INBOX_<identity> for partners and signal sources.
func InboxPrefix(id Identity) string {
	if _, ok := id.Partner(); ok {
		return "_INBOX_" + string(id)
	}
	if _, ok := id.SignalSource(); ok {
		return "_INBOX_" + string(id)
	}
	return "_INBOX"
}

// PartnerPermissions are a partner organisation's: its own stream, its own
// durable consumer on it, its own subjects and inbox; nothing shared.
func PartnerPermissions(org string) Permissions {
	subjects := "demarche.partner." + org + ".>"
	stream := PartnerStream(org)
	return Permissions{
		Publish: []string{
			"$JS.API.STREAM.INFO." + stream,
			"$JS.API.CONSUMER.CREATE." + stream + "." + org + "." + subjects,
			"$JS.API.CONSUMER.INFO." + stream + "." + org,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + org,
			"$JS.ACK." + stream + "." + org + ".>",
		},
		Subscribe: []string{subjects, InboxPrefix(PartnerIdentity(org)) + ".>"},
	}
}

// SignalSourcePermissions are a signal source's.
func SignalSourcePermissions(source string) Permissions {
	return Permissions{
		Publish:   []string{"demarche.signals." + source},
		Subscribe: []string{InboxPrefix(SignalSourceIdentity(source)) + ".>"},
	}
}
