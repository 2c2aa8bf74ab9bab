package temporalembed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/tasktoken"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/workflows/crisis"
)

// Temporal authorization: who may call what on the frontend.
//
// Every caller presents its identity's API key (Authorization: Bearer
// <identity>.<secret>); the server holds only the keys' hashes
// (keyClaimMapper). The authorizer then applies Table: the gateway and early
// warning alone start, update and signal crises (each with the exact update
// and signal names it sends), the partners service only signals
// acknowledgements, the worker alone polls the crisis task queue, funding and
// roster read crises, the audit identities and the observer read everything,
// and the admin alone terminates, resets, cancels, deletes and manages
// namespaces; even the admin cannot start, update or signal a crisis, nor
// poll or answer its tasks (a decision's principal and roles are what the
// gateway put there after checking the person's token).
//
// The server's own system workers (scheduler, batcher, ...) reach the
// history through the internal frontend, whose claims are the server's own
// (authorization.NewInternalClaimMapper), never through this one.

// ErrDenied is the refusal of a call the caller's identity may not make; the
// message names the identity, the API and the rule.
var ErrDenied = errors.New("temporal authorization")

// ErrUnauthenticated is the refusal of a call without a valid API key.
var ErrUnauthenticated = errors.New("temporal authentication")

// AuthTypeAPIKey is the principal type of a Démarche identity.
const AuthTypeAPIKey = "demarche-api-key"

// keyClaimMapper maps an API key to its identity.
type keyClaimMapper struct {
	hashes map[string][]temporalx.KeyHash
}

// authFailure, in Claims.Extensions, says why a caller has no identity: the
// authorizer refuses it with that reason (a claim mapper's own error would
// reach the caller as a bare "Request unauthorized").
type authFailure string

func (m keyClaimMapper) GetClaims(ai *authorization.AuthInfo) (*authorization.Claims, error) {
	token := strings.TrimSpace(ai.AuthToken)
	if token == "" {
		return &authorization.Claims{Extensions: authFailure("no API key presented (a TLS certificate alone is not an identity)")}, nil
	}
	scheme, key, ok := strings.Cut(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return &authorization.Claims{Extensions: authFailure("the Authorization header is not \"Bearer <API key>\"")}, nil
	}
	id := temporalx.KeyIdentity(key)
	for _, h := range m.hashes[id] {
		if h.Matches(key) {
			return &authorization.Claims{Subject: id, AuthType: AuthTypeAPIKey}, nil
		}
	}
	return &authorization.Claims{Extensions: authFailure("API key not recognised")}, nil
}

// keyAuthorizer applies Table to the identity the claim mapper found.
type keyAuthorizer struct{}

func (keyAuthorizer) Authorize(_ context.Context, claims *authorization.Claims, target *authorization.CallTarget) (authorization.Result, error) {
	// The gRPC health check tells nothing about crises.
	if target.APIName == "/grpc.health.v1.Health/Check" {
		return authorization.Result{Decision: authorization.DecisionAllow}, nil
	}
	if claims == nil {
		return deny(status.Error(codes.Unauthenticated, fmt.Sprintf("%s: %s refused: no credential: Démarche's Temporal frontend answers its identities' API keys only (Go SDK: client.NewAPIKeyStaticCredentials; temporal CLI: --api-key)", ErrUnauthenticated, api.MethodName(target.APIName))))
	}
	// The internal frontend: the server's own system workers.
	if claims.AuthType == authorization.InternalPrincipalType && claims.System&authorization.RoleAdmin != 0 {
		return authorization.Result{Decision: authorization.DecisionAllow}, nil
	}
	if f, ok := claims.Extensions.(authFailure); ok || claims.Subject == "" {
		return deny(status.Error(codes.Unauthenticated, fmt.Sprintf("%s: %s refused: %s", ErrUnauthenticated, api.MethodName(target.APIName), string(f))))
	}
	if err := Check(claims.Subject, target.APIName, target.Request); err != nil {
		return deny(serviceerror.NewPermissionDenied(err.Error(), ""))
	}
	stampIdentity(claims.Subject, target.Request)
	return authorization.Result{Decision: authorization.DecisionAllow,
		Principal: &commonpb.Principal{Type: AuthTypeAPIKey, Name: claims.Subject}}, nil
}

// stampIdentity makes the history name the authenticated identity of an
// operation made outside Démarche (terminate, cancel, reset, delete): the
// request's identity field is the client's own claim, kept in brackets
// after it ("admin (mallory@ops-laptop)"); crisis show, audit replay and the
// audit chain report it so.
func stampIdentity(identity string, req any) {
	switch x := req.(type) {
	case *workflowservice.TerminateWorkflowExecutionRequest:
		x.Identity = stamped(identity, x.GetIdentity())
	case *workflowservice.RequestCancelWorkflowExecutionRequest:
		x.Identity = stamped(identity, x.GetIdentity())
	case *workflowservice.ResetWorkflowExecutionRequest:
		x.Identity = stamped(identity, x.GetIdentity())
	}
}

func stamped(identity, claimed string) string {
	if claimed == "" || claimed == identity {
		return identity
	}
	return identity + " (" + claimed + ")"
}

func deny(err error) (authorization.Result, error) {
	return authorization.Result{Decision: authorization.DecisionDeny, Reason: err.Error()}, err
}

// API groups of the table (WorkflowService method names).
var (
	// Every identity: what a client asks when it dials.
	apisBasic = []string{"GetSystemInfo", "DescribeNamespace", "GetClusterInfo", "GetSearchAttributes"}
	// Reading one crisis.
	apisReadCrisis = []string{"DescribeWorkflowExecution", "QueryWorkflow", "GetWorkflowExecutionHistory", "GetWorkflowExecutionHistoryReverse"}
	// Listing crises (visibility).
	apisList = []string{"ListWorkflowExecutions", "CountWorkflowExecutions"}
	// A worker's task traffic.
	apisWorkerTasks = []string{"PollWorkflowTaskQueue", "PollActivityTaskQueue", "PollNexusTaskQueue",
		"RespondWorkflowTaskCompleted", "RespondWorkflowTaskFailed", "RespondQueryTaskCompleted",
		"RespondActivityTaskCompleted", "RespondActivityTaskCompletedById", "RespondActivityTaskFailed", "RespondActivityTaskFailedById",
		"RespondActivityTaskCanceled", "RespondActivityTaskCanceledById", "RecordActivityTaskHeartbeat", "RecordActivityTaskHeartbeatById",
		"RespondNexusTaskCompleted", "RespondNexusTaskFailed", "ResetStickyTaskQueue", "ShutdownWorker", "RecordWorkerHeartbeat", "FetchWorkerConfig"}
	// The updates the gateway sends, each after checking the person's token
	// against the policy table.
	gatewayUpdates = []string{crisis.UpdateDecide, crisis.UpdateEscalate, crisis.UpdateDeEscalate, crisis.UpdateSkipStage,
		crisis.UpdateReopenStage, crisis.UpdatePartnerRole, crisis.UpdateWarn, crisis.UpdateShare, crisis.UpdateComment}
)

// grant is one line of an identity's rights: these APIs, or every read-only
// API (Temporal's own method metadata), on a condition.
type grant struct {
	apis     []string
	readOnly bool
	// check, when set, must pass (the request's signal or update name, its
	// workflow, its task queue).
	check func(method string, req any) error
	// why names the rule in the table's documentation.
	why string
}

// Table is each identity's rights. Anything not granted is refused.
var Table = map[string][]grant{
	temporalx.IdentityWorker: {
		{apis: apisBasic}, {apis: apisReadCrisis}, {apis: apisList},
		{apis: apisWorkerTasks, check: crisisQueueOnly, why: "polls and answers the crisis task queue"},
	},
	temporalx.IdentityGateway: {
		{apis: apisBasic}, {apis: apisReadCrisis}, {apis: apisList}, {apis: []string{"PollWorkflowExecutionUpdate"}},
		{apis: []string{"StartWorkflowExecution"}, check: startsCrisis, why: "opens crises"},
		{apis: []string{"UpdateWorkflowExecution"}, check: updateNamed(gatewayUpdates...), why: "sends decisions and controls"},
	},
	temporalx.IdentityEarlyWarning: {
		{apis: apisBasic}, {apis: []string{"DescribeWorkflowExecution"}}, {apis: apisList},
		{apis: []string{"SignalWithStartWorkflowExecution", "SignalWorkflowExecution"}, check: signalNamed(crisis.SignalWarning), why: "opens or warns crises"},
	},
	temporalx.IdentityPartners: {
		// Reads a crisis's history to find the CrisisOpened and
		// SharingChanged it forwards (pkg/origin): who receives a crisis
		// comes from what the workflow did, never from an event alone.
		{apis: apisBasic}, {apis: apisReadCrisis},
		{apis: []string{"SignalWorkflowExecution"}, check: signalNamed(crisis.SignalPartnerAck), why: "signals partner acknowledgements"},
	},
	temporalx.IdentityFunding:  {{apis: apisBasic}, {apis: apisReadCrisis}},
	temporalx.IdentityRoster:   {{apis: apisBasic}, {apis: apisReadCrisis}},
	temporalx.IdentityAudit:    {{apis: apisBasic}, {apis: apisReadCrisis}, {apis: apisList}},
	temporalx.IdentityAuditor:  {{apis: apisBasic}, {readOnly: true}},
	temporalx.IdentityObserver: {{apis: apisBasic}, {readOnly: true}},
	temporalx.IdentityAdmin:    {{apis: []string{"*"}, check: notForgingCrisis}},
}

// Check says whether identity may call the API (its full gRPC name) with
// this request: nil, or an error naming the identity, the API and the rule.
func Check(identity, fullAPI string, req any) error {
	method := api.MethodName(fullAPI)
	grants, ok := Table[identity]
	if !ok {
		return fmt.Errorf("%w: unknown identity %q", ErrDenied, identity)
	}
	meta := api.GetMethodMetadata(fullAPI)
	ownService := strings.HasPrefix(fullAPI, api.WorkflowServicePrefix) || strings.HasPrefix(fullAPI, api.OperatorServicePrefix)
	var condErr error
	for _, g := range grants {
		match := slices.Contains(g.apis, "*") ||
			(ownService && slices.Contains(g.apis, method)) ||
			(ownService && g.readOnly && meta.Access == api.AccessReadOnly)
		if !match {
			continue
		}
		if g.check == nil {
			return nil
		}
		err := g.check(method, req)
		if err == nil {
			return nil
		}
		condErr = err
	}
	if condErr != nil {
		return fmt.Errorf("%w: %s may not call %s: %v", ErrDenied, identity, method, condErr)
	}
	return fmt.Errorf("%w: %s may not call %s (%s)", ErrDenied, identity, method, ruleFor(method))
}

// ruleFor names who may call a method, for refusals.
func ruleFor(method string) string {
	switch method {
	case "TerminateWorkflowExecution", "ResetWorkflowExecution", "DeleteWorkflowExecution", "RequestCancelWorkflowExecution":
		return "terminate, reset, delete and cancel: admin only"
	case "StartWorkflowExecution", "UpdateWorkflowExecution":
		return "crises are opened, decided and steered by the gateway only"
	case "SignalWithStartWorkflowExecution":
		return "warnings come from early warning only"
	case "SignalWorkflowExecution":
		return "signals come from the identity that owns them: partner acknowledgements from partners"
	}
	if slices.Contains(apisWorkerTasks, method) {
		return "the crisis task queue is the worker's only"
	}
	return "not in this identity's rights"
}

func isCrisisWorkflowID(id string) bool { return strings.HasPrefix(id, crisis.WorkflowID("")) }

func isCrisisQueue(tq interface {
	GetName() string
	GetNormalName() string
	GetKind() enumspb.TaskQueueKind
}) bool {
	if tq == nil {
		return false
	}
	if tq.GetKind() == enumspb.TASK_QUEUE_KIND_STICKY {
		return tq.GetNormalName() == crisis.TaskQueue
	}
	return tq.GetName() == crisis.TaskQueue
}

// crisisQueueOnly: the worker polls the crisis task queue (and its own
// sticky queues) only.
func crisisQueueOnly(method string, req any) error {
	switch r := req.(type) {
	case *workflowservice.PollWorkflowTaskQueueRequest:
		if !isCrisisQueue(r.GetTaskQueue()) {
			return fmt.Errorf("task queue %q is not %s", r.GetTaskQueue().GetName(), crisis.TaskQueue)
		}
	case *workflowservice.PollActivityTaskQueueRequest:
		if !isCrisisQueue(r.GetTaskQueue()) {
			return fmt.Errorf("task queue %q is not %s", r.GetTaskQueue().GetName(), crisis.TaskQueue)
		}
	}
	return nil
}

// startsCrisis: a crisis workflow, on the crisis task queue, under a crisis id.
func startsCrisis(_ string, req any) error {
	r, ok := req.(*workflowservice.StartWorkflowExecutionRequest)
	if !ok {
		return errors.New("not a workflow start")
	}
	if r.GetRequestEagerExecution() {
		// The first workflow task would be handed to the starter: tasks are the worker's.
		return errors.New("eager execution: a crisis's tasks run on the worker only")
	}
	return crisisStart(r.GetWorkflowId(), r.GetWorkflowType().GetName(), r.GetTaskQueue().GetName())
}

func crisisStart(id, wfType, queue string) error {
	if wfType != crisis.WorkflowName || queue != crisis.TaskQueue || !isCrisisWorkflowID(id) {
		return fmt.Errorf("only %s workflows (id %s<crisis>) on task queue %s (asked: %s %q on %q)",
			crisis.WorkflowName, crisis.WorkflowID(""), crisis.TaskQueue, wfType, id, queue)
	}
	return nil
}

// updateNamed: these updates, to a crisis.
func updateNamed(names ...string) func(string, any) error {
	return func(_ string, req any) error {
		r, ok := req.(*workflowservice.UpdateWorkflowExecutionRequest)
		if !ok {
			return errors.New("not an update")
		}
		name := r.GetRequest().GetInput().GetName()
		if !slices.Contains(names, name) {
			return fmt.Errorf("update %q is not one of its own (%s)", name, strings.Join(names, ", "))
		}
		if !isCrisisWorkflowID(r.GetWorkflowExecution().GetWorkflowId()) {
			return fmt.Errorf("workflow %q is not a crisis", r.GetWorkflowExecution().GetWorkflowId())
		}
		return nil
	}
}

// signalNamed: this signal only, to a crisis (signal-with-start: a crisis start).
func signalNamed(name string) func(string, any) error {
	return func(_ string, req any) error {
		switch r := req.(type) {
		case *workflowservice.SignalWorkflowExecutionRequest:
			if r.GetSignalName() != name {
				return fmt.Errorf("signal %q is not its own (%s)", r.GetSignalName(), name)
			}
			if !isCrisisWorkflowID(r.GetWorkflowExecution().GetWorkflowId()) {
				return fmt.Errorf("workflow %q is not a crisis", r.GetWorkflowExecution().GetWorkflowId())
			}
			return nil
		case *workflowservice.SignalWithStartWorkflowExecutionRequest:
			if r.GetSignalName() != name {
				return fmt.Errorf("signal %q is not its own (%s)", r.GetSignalName(), name)
			}
			return crisisStart(r.GetWorkflowId(), r.GetWorkflowType().GetName(), r.GetTaskQueue().GetName())
		}
		return errors.New("not a signal")
	}
}

var tokens = tasktoken.NewSerializer()

// notForgingCrisis: the admin may do anything but what would put words in a
// crisis's mouth: start, signal or update it, run its tasks or answer them
// (a bench may still run workflows of its own on other task queues).
func notForgingCrisis(method string, req any) error {
	forged := errors.New("crises are started, updated and signalled by their own identities only, and their tasks run on the worker only")
	// The admin service's history writers could replay or import events
	// (a signal, an update) into any workflow.
	switch method {
	case "ReapplyEvents", "ImportWorkflowExecution", "AddTasks", "SyncWorkflowState":
		return errors.New("writing events or tasks into a history: " + forged.Error())
	}
	switch r := req.(type) {
	case *workflowservice.StartWorkflowExecutionRequest:
		if touchesCrisis(r.GetWorkflowId(), r.GetWorkflowType().GetName(), r.GetTaskQueue().GetName()) {
			return forged
		}
	case *workflowservice.SignalWithStartWorkflowExecutionRequest:
		if touchesCrisis(r.GetWorkflowId(), r.GetWorkflowType().GetName(), r.GetTaskQueue().GetName()) {
			return forged
		}
	case *workflowservice.SignalWorkflowExecutionRequest:
		if isCrisisWorkflowID(r.GetWorkflowExecution().GetWorkflowId()) {
			return forged
		}
	case *workflowservice.UpdateWorkflowExecutionRequest:
		if isCrisisWorkflowID(r.GetWorkflowExecution().GetWorkflowId()) {
			return forged
		}
	case *workflowservice.ExecuteMultiOperationRequest:
		for _, op := range r.GetOperations() {
			if s := op.GetStartWorkflow(); s != nil && touchesCrisis(s.GetWorkflowId(), s.GetWorkflowType().GetName(), s.GetTaskQueue().GetName()) {
				return forged
			}
			if u := op.GetUpdateWorkflow(); u != nil && isCrisisWorkflowID(u.GetWorkflowExecution().GetWorkflowId()) {
				return forged
			}
		}
	case *workflowservice.CreateScheduleRequest:
		if s := r.GetSchedule().GetAction().GetStartWorkflow(); s != nil && touchesCrisis(s.GetWorkflowId(), s.GetWorkflowType().GetName(), s.GetTaskQueue().GetName()) {
			return forged
		}
	case *workflowservice.UpdateScheduleRequest:
		if s := r.GetSchedule().GetAction().GetStartWorkflow(); s != nil && touchesCrisis(s.GetWorkflowId(), s.GetWorkflowType().GetName(), s.GetTaskQueue().GetName()) {
			return forged
		}
	case *workflowservice.StartBatchOperationRequest:
		if _, ok := r.GetOperation().(*workflowservice.StartBatchOperationRequest_SignalOperation); ok {
			return errors.New("batch signals: signals come from the identity that owns them")
		}
	case *workflowservice.PollWorkflowTaskQueueRequest:
		if isCrisisQueue(r.GetTaskQueue()) {
			return forged
		}
	case *workflowservice.PollActivityTaskQueueRequest:
		if isCrisisQueue(r.GetTaskQueue()) {
			return forged
		}
	case *workflowservice.RespondQueryTaskCompletedRequest:
		if t, err := tokens.DeserializeQueryTaskToken(r.GetTaskToken()); err != nil || t.GetTaskQueue() == crisis.TaskQueue {
			return forged
		}
	case interface{ GetTaskToken() []byte }:
		if t, err := tokens.Deserialize(r.GetTaskToken()); err != nil || isCrisisWorkflowID(t.GetWorkflowId()) {
			return forged
		}
	case interface{ GetWorkflowId() string }:
		// The *ById activity answers and heartbeats.
		if strings.HasSuffix(method, "ById") && isCrisisWorkflowID(r.GetWorkflowId()) {
			return forged
		}
	}
	return nil
}

func touchesCrisis(id, wfType, queue string) bool {
	return isCrisisWorkflowID(id) || wfType == crisis.WorkflowName || queue == crisis.TaskQueue
}
