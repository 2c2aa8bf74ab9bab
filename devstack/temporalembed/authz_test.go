package temporalembed

import (
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"

	tokenspb "go.temporal.io/server/api/token/v1"

	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/workflows/crisis"
)

func wf(m string) string { return api.WorkflowServicePrefix + m }

var crisisExec = &commonpb.WorkflowExecution{WorkflowId: crisis.WorkflowID("GN-20261207-X1")}

func startReq(id, wfType, queue string) *workflowservice.StartWorkflowExecutionRequest {
	return &workflowservice.StartWorkflowExecutionRequest{WorkflowId: id, WorkflowType: &commonpb.WorkflowType{Name: wfType},
		TaskQueue: &taskqueuepb.TaskQueue{Name: queue}}
}

func updateReq(name string) *workflowservice.UpdateWorkflowExecutionRequest {
	return &workflowservice.UpdateWorkflowExecutionRequest{WorkflowExecution: crisisExec,
		Request: &updatepb.Request{Input: &updatepb.Input{Name: name}}}
}

func signalReq(name string) *workflowservice.SignalWorkflowExecutionRequest {
	return &workflowservice.SignalWorkflowExecutionRequest{WorkflowExecution: crisisExec, SignalName: name}
}

func signalWithStartReq(name string) *workflowservice.SignalWithStartWorkflowExecutionRequest {
	return &workflowservice.SignalWithStartWorkflowExecutionRequest{WorkflowId: crisisExec.GetWorkflowId(), SignalName: name,
		WorkflowType: &commonpb.WorkflowType{Name: crisis.WorkflowName}, TaskQueue: &taskqueuepb.TaskQueue{Name: crisis.TaskQueue}}
}

func pollReq(queue string) *workflowservice.PollWorkflowTaskQueueRequest {
	return &workflowservice.PollWorkflowTaskQueueRequest{TaskQueue: &taskqueuepb.TaskQueue{Name: queue}}
}

func taskToken(t *testing.T, workflowID string) []byte {
	t.Helper()
	b, err := tokens.Serialize(&tokenspb.Task{WorkflowId: workflowID, ActivityId: "1"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every identity × API of the table, each way it could go wrong: a right
// missing breaks a service, a right too many is a way in.
func TestAuthorizationTable(t *testing.T) {
	type call struct {
		api string
		req any
	}
	var (
		describe    = call{wf("DescribeWorkflowExecution"), &workflowservice.DescribeWorkflowExecutionRequest{Execution: crisisExec}}
		query       = call{wf("QueryWorkflow"), &workflowservice.QueryWorkflowRequest{Execution: crisisExec}}
		history     = call{wf("GetWorkflowExecutionHistory"), &workflowservice.GetWorkflowExecutionHistoryRequest{Execution: crisisExec}}
		list        = call{wf("ListWorkflowExecutions"), &workflowservice.ListWorkflowExecutionsRequest{}}
		count       = call{wf("CountWorkflowExecutions"), &workflowservice.CountWorkflowExecutionsRequest{}}
		sysInfo     = call{wf("GetSystemInfo"), &workflowservice.GetSystemInfoRequest{}}
		startCrisis = call{wf("StartWorkflowExecution"), startReq(crisisExec.GetWorkflowId(), crisis.WorkflowName, crisis.TaskQueue)}
		startOther  = call{wf("StartWorkflowExecution"), startReq("bench-1", "Baseline", "bench-baseline")}
		startSneaky = call{wf("StartWorkflowExecution"), startReq("bench-1", crisis.WorkflowName, crisis.TaskQueue)}
		startEager  = call{wf("StartWorkflowExecution"), func() any {
			r := startReq(crisisExec.GetWorkflowId(), crisis.WorkflowName, crisis.TaskQueue)
			r.RequestEagerExecution = true
			return r
		}()}
		decide       = call{wf("UpdateWorkflowExecution"), updateReq(crisis.UpdateDecide)}
		escalate     = call{wf("UpdateWorkflowExecution"), updateReq(crisis.UpdateEscalate)}
		otherUpdate  = call{wf("UpdateWorkflowExecution"), updateReq("crisis.forge")}
		ack          = call{wf("SignalWorkflowExecution"), signalReq(crisis.SignalPartnerAck)}
		warning      = call{wf("SignalWorkflowExecution"), signalReq(crisis.SignalWarning)}
		relapse      = call{wf("SignalWorkflowExecution"), signalReq(crisis.SignalRelapse)}
		stageOutcome = call{wf("SignalWorkflowExecution"), signalReq(crisis.SignalStageOutcome)}
		sws          = call{wf("SignalWithStartWorkflowExecution"), signalWithStartReq(crisis.SignalWarning)}
		swsAck       = call{wf("SignalWithStartWorkflowExecution"), signalWithStartReq(crisis.SignalPartnerAck)}
		pollCrisis   = call{wf("PollWorkflowTaskQueue"), pollReq(crisis.TaskQueue)}
		pollSticky   = call{wf("PollWorkflowTaskQueue"), &workflowservice.PollWorkflowTaskQueueRequest{TaskQueue: &taskqueuepb.TaskQueue{Name: "host:uuid", Kind: enumspb.TASK_QUEUE_KIND_STICKY, NormalName: crisis.TaskQueue}}}
		pollOther    = call{wf("PollWorkflowTaskQueue"), pollReq("bench-baseline")}
		respondCris  = call{wf("RespondActivityTaskCompleted"), &workflowservice.RespondActivityTaskCompletedRequest{TaskToken: taskToken(t, crisisExec.GetWorkflowId())}}
		respondOther = call{wf("RespondActivityTaskCompleted"), &workflowservice.RespondActivityTaskCompletedRequest{TaskToken: taskToken(t, "bench-1")}}
		respondByID  = call{wf("RespondActivityTaskCompletedById"), &workflowservice.RespondActivityTaskCompletedByIdRequest{WorkflowId: crisisExec.GetWorkflowId()}}
		terminate    = call{wf("TerminateWorkflowExecution"), &workflowservice.TerminateWorkflowExecutionRequest{WorkflowExecution: crisisExec}}
		reset        = call{wf("ResetWorkflowExecution"), &workflowservice.ResetWorkflowExecutionRequest{WorkflowExecution: crisisExec}}
		cancel       = call{wf("RequestCancelWorkflowExecution"), &workflowservice.RequestCancelWorkflowExecutionRequest{WorkflowExecution: crisisExec}}
		del          = call{wf("DeleteWorkflowExecution"), &workflowservice.DeleteWorkflowExecutionRequest{WorkflowExecution: crisisExec}}
		regNS        = call{wf("RegisterNamespace"), &workflowservice.RegisterNamespaceRequest{}}
		addSA        = call{api.OperatorServicePrefix + "AddSearchAttributes", nil}
		listSA       = call{api.OperatorServicePrefix + "ListSearchAttributes", nil}
		adminAPI     = call{api.AdminServicePrefix + "DescribeMutableState", nil}
		reapply      = call{api.AdminServicePrefix + "ReapplyEvents", nil}
		importWF     = call{api.AdminServicePrefix + "ImportWorkflowExecution", nil}
		batchSignal  = call{wf("StartBatchOperation"), &workflowservice.StartBatchOperationRequest{Operation: &workflowservice.StartBatchOperationRequest_SignalOperation{}}}
		schedule     = call{wf("CreateSchedule"), &workflowservice.CreateScheduleRequest{}}
		descTQ       = call{wf("DescribeTaskQueue"), &workflowservice.DescribeTaskQueueRequest{}}
	)
	all := map[string]call{"describe": describe, "query": query, "history": history, "list": list, "count": count, "sysinfo": sysInfo,
		"start crisis": startCrisis, "start other": startOther, "start crisis type under another id": startSneaky, "start crisis eagerly": startEager,
		"decide": decide, "escalate": escalate, "unknown update": otherUpdate,
		"partner ack": ack, "warning signal": warning, "relapse signal": relapse, "stage outcome signal": stageOutcome,
		"signal-with-start warning": sws, "signal-with-start ack": swsAck,
		"poll crisis queue": pollCrisis, "poll sticky crisis queue": pollSticky, "poll other queue": pollOther,
		"answer crisis activity": respondCris, "answer other activity": respondOther, "answer crisis activity by id": respondByID,
		"terminate": terminate, "reset": reset, "cancel": cancel, "delete": del, "register namespace": regNS,
		"add search attributes": addSA, "list search attributes": listSA, "admin service": adminAPI, "reapply events": reapply, "import a history": importWF,
		"batch signal": batchSignal, "create schedule": schedule, "describe task queue": descTQ}
	allowed := map[string][]string{
		temporalx.IdentityWorker: {"describe", "query", "history", "list", "count", "sysinfo",
			"poll crisis queue", "poll sticky crisis queue", "answer crisis activity", "answer other activity", "answer crisis activity by id"},
		temporalx.IdentityGateway:      {"describe", "query", "history", "list", "count", "sysinfo", "start crisis", "decide", "escalate"},
		temporalx.IdentityEarlyWarning: {"describe", "list", "count", "sysinfo", "signal-with-start warning", "warning signal"},
		temporalx.IdentityPartners:     {"describe", "query", "history", "sysinfo", "partner ack"},
		temporalx.IdentityFunding:      {"describe", "query", "history", "sysinfo"},
		temporalx.IdentityRoster:       {"describe", "query", "history", "sysinfo"},
		temporalx.IdentityAudit:        {"describe", "query", "history", "list", "count", "sysinfo"},
		temporalx.IdentityAuditor:      {"describe", "query", "history", "list", "count", "sysinfo", "list search attributes", "describe task queue"},
		temporalx.IdentityObserver:     {"describe", "query", "history", "list", "count", "sysinfo", "list search attributes", "describe task queue"},
		temporalx.IdentityAdmin: {"describe", "query", "history", "list", "count", "sysinfo", "start other", "poll other queue", "answer other activity",
			"terminate", "reset", "cancel", "delete", "register namespace", "add search attributes", "list search attributes", "admin service",
			"create schedule", "describe task queue"},
	}
	for _, id := range temporalx.Identities {
		want, ok := allowed[id]
		if !ok {
			t.Fatalf("identity %s has no expectations", id)
		}
		for name, c := range all {
			err := Check(id, c.api, c.req)
			ok := err == nil
			should := false
			for _, w := range want {
				should = should || w == name
			}
			if ok != should {
				t.Errorf("%s × %s: allowed %v, want %v (%v)", id, name, ok, should, err)
			}
			if err != nil && (!errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), api.MethodName(c.api))) {
				t.Errorf("%s × %s: refusal %q does not name the identity and the API", id, name, err)
			}
		}
	}
	if err := Check("mallory", wf("GetSystemInfo"), nil); err == nil {
		t.Error("an unknown identity was let in")
	}
}

// The claim mapper: a key is its identity's only when its hash matches; the
// authorizer refuses a caller without one (unauthenticated), and lets the
// server's own internal frontend through.
func TestAPIKeyClaims(t *testing.T) {
	key, err := temporalx.NewKey(temporalx.IdentityAuditor)
	if err != nil {
		t.Fatal(err)
	}
	forged := temporalx.IdentityAdmin + "." + strings.SplitN(key, ".", 2)[1] // the auditor's secret, claiming admin
	m := keyClaimMapper{hashes: map[string][]temporalx.KeyHash{temporalx.IdentityAuditor: {temporalx.HashKey(key)}}}
	var a keyAuthorizer
	sysInfo := &authorization.CallTarget{APIName: wf("GetSystemInfo")}
	for name, tc := range map[string]struct {
		header string
		want   string // identity, or "" for refused
	}{
		"the auditor's key":       {"Bearer " + key, temporalx.IdentityAuditor},
		"lower-case scheme":       {"bearer " + key, temporalx.IdentityAuditor},
		"no scheme":               {key, ""},
		"a forged admin key":      {"Bearer " + forged, ""},
		"the key with a bit more": {"Bearer " + key + "x", ""},
		"no key (TLS only)":       {"", ""},
	} {
		claims, err := m.GetClaims(&authorization.AuthInfo{AuthToken: tc.header})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if claims.Subject != tc.want {
			t.Errorf("%s: identity %q, want %q", name, claims.Subject, tc.want)
		}
		res, err := a.Authorize(t.Context(), claims, sysInfo)
		if (res.Decision == authorization.DecisionAllow) != (tc.want != "") {
			t.Errorf("%s: decision %v (%v)", name, res.Decision, err)
		}
		if tc.want == "" && (err == nil || !strings.Contains(err.Error(), ErrUnauthenticated.Error())) {
			t.Errorf("%s: refusal %v, want an authentication error", name, err)
		}
	}
	if res, err := a.Authorize(t.Context(), nil, sysInfo); res.Decision == authorization.DecisionAllow || err == nil || !strings.Contains(err.Error(), "no credential") {
		t.Errorf("no claims at all: %v %v", res.Decision, err)
	}
	internal, _ := authorization.NewInternalClaimMapper().GetClaims(&authorization.AuthInfo{})
	if res, _ := a.Authorize(t.Context(), internal, &authorization.CallTarget{APIName: wf("TerminateWorkflowExecution")}); res.Decision != authorization.DecisionAllow {
		t.Error("the internal frontend's system workers were refused")
	}
}

// An operation made outside Démarche is recorded under the identity that
// made it, whatever the client called itself.
func TestOutsideOperationsAreStampedWithTheIdentity(t *testing.T) {
	var a keyAuthorizer
	req := &workflowservice.TerminateWorkflowExecutionRequest{WorkflowExecution: crisisExec, Identity: "gateway"}
	claims := &authorization.Claims{Subject: temporalx.IdentityAdmin, AuthType: AuthTypeAPIKey}
	if res, err := a.Authorize(t.Context(), claims, &authorization.CallTarget{APIName: wf("TerminateWorkflowExecution"), Request: req}); err != nil || res.Decision != authorization.DecisionAllow {
		t.Fatalf("admin terminate: %v %v", res.Decision, err)
	}
	if req.GetIdentity() != "admin (gateway)" {
		t.Fatalf("identity recorded %q, want %q", req.GetIdentity(), "admin (gateway)")
	}
}
