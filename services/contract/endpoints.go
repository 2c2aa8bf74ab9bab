package contract

import (
	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/natsrpc"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/partners"
)

// Endpoint is one request subject a Démarche NATS micro service answers.
// Bodies are protobuf JSON, or binary protobuf when the request's
// Content-Type is application/protobuf (pkg/natsrpc); errors come back in the
// Nats-Service-Error-Code / Nats-Service-Error headers.
type Endpoint struct {
	Service  string // the micro service's name (`nats micro info NAME`)
	Subject  string
	Request  proto.Message
	Response proto.Message
	Summary  string
	// Raw endpoints answer bytes that are not a Démarche message (Response is
	// nil): Raw is their content type(s).
	Raw string
}

// Endpoints lists every request subject, service by service. The stack's
// integration test checks it against what the running services announce.
func Endpoints() []Endpoint {
	return []Endpoint{
		{natsrpc.RosterService, natsrpc.RosterSearch, &demarchev1.RosterSearchRequest{}, &demarchev1.RosterSearchResponse{},
			"Rank envoys, mediators and standby experts for a need (expertise, languages, region).", ""},
		{natsrpc.RosterService, natsrpc.RosterReserve, &demarchev1.ReserveRequest{}, &demarchev1.ReserveResponse{},
			"Book experts for a crisis role, carrying out the crisis's envoy-appointment (the worker only; checked in the crisis's workflow); never double-books, idempotent per crisis and role.", ""},
		{natsrpc.RosterService, natsrpc.RosterRelease, &demarchev1.ReleaseRequest{}, &demarchev1.ReleaseResponse{},
			"Release a crisis's bookings at its closure (the worker only; checked in the crisis's workflow).", ""},
		{natsrpc.RosterService, natsrpc.RosterAssignments, &demarchev1.AssignmentsRequest{}, &demarchev1.AssignmentsResponse{},
			"A crisis's current bookings.", ""},
		{natsrpc.RosterService, natsrpc.RosterExperts, &demarchev1.AssignmentsRequest{}, &demarchev1.ExpertsResponse{},
			"Every expert on the roster (the request's crisis_id is ignored).", ""},
		{natsrpc.FundingService, natsrpc.FundingRequest, &demarchev1.FundingRequestCall{}, &demarchev1.FundingRecord{},
			"Request money from a rapid-response fund for a crisis (ceiling checked), carrying out the crisis's funding-request (the worker only; checked in the crisis's workflow).", ""},
		{natsrpc.FundingService, natsrpc.FundingDecide, &demarchev1.FundingDecideCall{}, &demarchev1.FundingRecord{},
			"Approve or reject a request, carrying out the crisis's funding-decision (the worker only; checked in the crisis's workflow); the requester never decides (four-eyes).", ""},
		{natsrpc.FundingService, natsrpc.FundingDisburse, &demarchev1.DisburseCall{}, &demarchev1.DisburseResult{},
			"Pay an approved request, carrying out the crisis's recorded approval (the worker only; checked in the crisis's workflow), once per disbursement key; balances never go negative.", ""},
		{natsrpc.FundingService, natsrpc.FundingContribute, &demarchev1.ContributeCall{}, &demarchev1.ContributeResult{},
			"Credit a voluntary contribution (donor, amount in USD, reference) to a fund, as a ledger line recorded on the global audit chain; the gateway alone may send it, for a funding officer or fund manager (who is stamped from the credential). The same reference again changes nothing.", ""},
		{natsrpc.FundingService, natsrpc.FundingBalance, &demarchev1.FundQuery{}, &demarchev1.BalanceResponse{},
			"A fund's balance (opening balance + contributions - disbursements).", ""},
		{natsrpc.FundingService, natsrpc.FundingLedger, &demarchev1.FundQuery{}, &demarchev1.LedgerResponse{},
			"A fund's append-only ledger.", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningIngest, &demarchev1.IngestRequest{}, &demarchev1.IngestResponse{},
			"Ingest signals: each accepted, duplicate or rejected with its reason.", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningScore, &demarchev1.ScoreRequest{}, &demarchev1.ScoreResponse{},
			"A situation's (country + crisis type) score, threshold and contributing signals.", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningSituations, &demarchev1.SituationsRequest{}, &demarchev1.SituationsResponse{},
			"The situations with signals in their window at a glance (score, threshold, newest signal), the most pressing first, naming no crisis (the gateway's console inbox).", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningSignals, &demarchev1.SignalsQuery{}, &demarchev1.SignalsPage{},
			"Accepted signals from the signal store (EARLYWARNING_SIGNAL_STORE: every live or historical signal, its latest revision), by country, crisis type and event-time range, oldest first, a page at a time (the gateway's GET /v1/signals).", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningRules, &demarchev1.ApplyRulesRequest{}, &demarchev1.RulesChanged{},
			"Put a rules file into force without a restart (the gateway alone may ask, for the head of department; applied_by is the caller it authenticated): validated with the bounds of warning rules validate (a refused file changes nothing), kept in the EARLYWARNING_RULES bucket, recorded on the audit trail, every situation re-scored under the new version.", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningActiveRules, &demarchev1.ActiveRulesRequest{}, &demarchev1.ActiveRules{},
			"The rules in force: the last applied version's file with who applied it when and its revision in the EARLYWARNING_RULES bucket (revision 0: the service's own --rules file, none applied since).", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningDialogue, &demarchev1.RecordDialogueRequest{}, &demarchev1.RecordDialogueResponse{},
			"Record an early-warning dialogue held with a regional organisation of the partner registry about a situation (kept in EARLYWARNING_DIALOGUES, recorded on the global audit chain); the gateway alone may ask, for an analyst or a head of department (who is stamped from the credential). The same dialogue again changes nothing.", ""},
		{natsrpc.EarlyWarningService, natsrpc.EarlyWarningScorecard, nil, nil,
			"The scorecard of the rules in force beside two naive baselines (hits, misses, false alarms, precision, recall, AUPR, Brier, lead times, threshold sweep), naming the data it was evaluated on; any request body (the gateway's console scorecard page).", "application/json"},
		{partners.ServiceName, partners.SubjectList, &demarchev1.ListPartnersRequest{}, &demarchev1.ListPartnersResponse{},
			"The partner organisations and what each receives.", ""},
		{partners.ServiceName, partners.SubjectAckRole, &demarchev1.AckRoleRequest{}, &demarchev1.AckRoleResponse{},
			"A partner acknowledges its role (lead, support, ...) in a crisis shared with it; signals the crisis.", ""},
		{audit.ServiceName, audit.SubjectChain, &demarchev1.AuditChainRequest{}, &demarchev1.AuditChain{},
			"Read a hash-chained audit trail (global or one crisis's); the read is itself audited.", ""},
		{audit.ServiceName, audit.SubjectHeads, &demarchev1.AuditHeadsRequest{}, &demarchev1.AuditHeads{},
			"The head of every chain, signed when the deployment has a key.", ""},
		{audit.ServiceName, audit.SubjectRead, &demarchev1.AuditReadRequest{}, &demarchev1.AuditReadResponse{},
			"Record that a principal read a restricted or confidential crisis (the gateway sends one per read).", ""},
		{audit.ServiceName, audit.SubjectOperation, &demarchev1.AuditOperationRequest{}, &demarchev1.AuditOperationResponse{},
			"Record an operation done to a crisis's workflow outside Démarche (terminate, cancel, reset), found in its history; the worker alone may send it.", ""},
		{audit.ServiceName, natsrpc.AuditFundOpened, &demarchev1.LedgerEntry{}, &demarchev1.AuditOperationResponse{},
			"Record a fund's opening line on the global chain (demarche admin open-fund); the provisioner alone may send it.", ""},
		{audit.ServiceName, natsrpc.AuditRulesChanged, &demarchev1.RulesChanged{}, &demarchev1.AuditOperationResponse{},
			"Record early-warning rules put into force on the global chain (event type rules-changed, principal the person who applied them); early warning alone may send it.", ""},
		{audit.ServiceName, natsrpc.AuditFundContribution, &demarchev1.LedgerEntry{}, &demarchev1.AuditOperationResponse{},
			"Record a voluntary contribution's ledger line on the global chain; the funding service alone may send it.", ""},
		{audit.ServiceName, natsrpc.AuditWarningDialogue, &demarchev1.WarningDialogue{}, &demarchev1.AuditOperationResponse{},
			"Record an early-warning dialogue with a regional organisation on the global chain (event type warning-dialogue, principal the person who recorded it); early warning alone may send it.", ""},
		{ServiceName, SubjectGet, &demarchev1.GetSchemaRequest{}, nil,
			"Resolve a ce-dataschema (or a message name or ce-type) to its schema in a standard encoding (format): the google.protobuf.FileDescriptorSet in protobuf JSON (descriptor-json, the default) or binary (descriptor), or a JSON Schema of its JSON form (jsonschema).",
			"application/json (descriptor-json), application/x-protobuf (descriptor) or application/schema+json (jsonschema)"},
		{ServiceName, SubjectAsyncAPI, nil, nil,
			"This AsyncAPI document (JSON); any request body.", "application/json"},
	}
}
