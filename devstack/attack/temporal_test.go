package attack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/demarche/demarche/devstack/stack"
	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

const wallTemporal = "temporal"

// startStackWithTemporalHTTP is startStack with the Temporal frontend's HTTP
// API on (demarche dev --temporal-http), so its attacks run on one stack.
func startStackWithTemporalHTTP(t *testing.T) *stack.Stack {
	t.Helper()
	return startStack(t, func(c *stack.Config) { c.TemporalHTTP = true })
}

// openCrisis opens a crisis through the gateway as the duty officer and
// waits for its triage decision to be pending; it answers the crisis id.
func openCrisis(t *testing.T, s *stack.Stack, auditor client.Client, title string) string {
	t.Helper()
	code, body := demo(t, s, "duty").do("POST", "/v1/crises", fmt.Sprintf(`{"crisis": {"title": %q, "countryCode": "NE", "crisisType": "CRISIS_TYPE_CONSTITUTIONAL_CRISIS", "severity": 3, "confidentiality": "CONFIDENTIALITY_PUBLIC"}}`, title))
	if code != http.StatusCreated && code != http.StatusAccepted {
		t.Fatalf("open crisis: %d %s", code, body)
	}
	var st struct {
		Crisis struct {
			ID string `json:"id"`
		} `json:"crisis"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Crisis.ID == "" {
		t.Fatalf("open crisis: no id in %s (%v)", body, err)
	}
	id := st.Crisis.ID
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		cs, err := crisis.State(context.Background(), auditor, id)
		if err == nil && len(cs.GetPendingDecisions()) > 0 {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("crisis %s: no pending decision after a minute (%v)", id, err)
		}
	}
}

// noCredential is the frontend's gRPC API reached with no API key at all,
// as a raw gRPC client (or the temporal CLI without --api-key) would.
func noCredential(t *testing.T, s *stack.Stack) workflowservice.WorkflowServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.TemporalAddress(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return workflowservice.NewWorkflowServiceClient(conn)
}

// refused asserts a call was refused by the authorizer, naming the identity
// (or the missing credential) and the API; it answers the refusal.
func refused(t *testing.T, err error, identity, api string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: %s was let through", identity, api)
	}
	var denied *serviceerror.PermissionDenied
	if identity == "none" {
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no credential") || !strings.Contains(err.Error(), api) {
			t.Fatalf("none: %s refused with %v, want an authentication refusal naming it", api, err)
		}
		return "refused: " + err.Error()
	}
	if !errors.As(err, &denied) || !strings.Contains(err.Error(), identity+" may not call "+api) {
		t.Fatalf("%s: %s refused with %T %v, want PermissionDenied naming identity and API", identity, api, err, err)
	}
	return "refused: " + err.Error()
}

func TestTemporalAuthorization(t *testing.T) {
	s := startStackWithTemporalHTTP(t)
	ctx := context.Background()
	auditor := temporalAs(t, s, temporalx.IdentityAuditor)
	id := openCrisis(t, s, auditor, "Standoff in Niamey")

	// A forged crisis.decide, straight to Temporal: principal and roles
	// invented, four-eyes and the triage rules bypassed if it got through.
	forged := &demarchev1.DecisionRequest{Principal: "approver", Roles: []demarchev1.Role{demarchev1.Role_ROLE_DUTY_OFFICER, demarchev1.Role_ROLE_FUNDING_OFFICER, demarchev1.Role_ROLE_HEAD_OF_DEPARTMENT},
		Rationale: "forged", Decision: &demarchev1.DecisionRequest_Triage{Triage: &demarchev1.WarningTriage{Assessment: "credible"}}}
	t.Run("forged crisis.decide", func(t *testing.T) {
		for _, who := range []string{temporalx.IdentityWorker, temporalx.IdentityEarlyWarning, temporalx.IdentityPartners, temporalx.IdentityFunding,
			temporalx.IdentityRoster, temporalx.IdentityAudit, temporalx.IdentityAuditor, temporalx.IdentityObserver, temporalx.IdentityAdmin, "none"} {
			uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var err error
			if who == "none" {
				_, err = noCredential(t, s).UpdateWorkflowExecution(uctx, &workflowservice.UpdateWorkflowExecutionRequest{Namespace: s.Namespace(),
					WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: crisis.WorkflowID(id)},
					Request:           &updatepb.Request{Meta: &updatepb.Meta{UpdateId: "forged-none"}, Input: &updatepb.Input{Name: crisis.UpdateDecide}}})
			} else {
				_, err = temporalAs(t, s, who).UpdateWorkflow(uctx, client.UpdateWorkflowOptions{WorkflowID: crisis.WorkflowID(id), UpdateName: crisis.UpdateDecide,
					UpdateID: "forged-" + who, Args: []any{forged}, WaitForStage: client.WorkflowUpdateStageCompleted})
			}
			cancel()
			attempt(t, wallTemporal, "crisis.decide update with forged principal and roles, straight to Temporal", who, refused(t, err, who, "UpdateWorkflowExecution"))
		}
		// Nothing applied: the crisis has no decision, its triage still pending.
		st, err := crisis.State(ctx, auditor, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.GetDecisions()) != 0 || len(st.GetPendingDecisions()) == 0 {
			t.Fatalf("after the forged updates: %d decisions, %d pending; want none recorded", len(st.GetDecisions()), len(st.GetPendingDecisions()))
		}
	})

	t.Run("forged partner acknowledgement", func(t *testing.T) {
		ack := &demarchev1.PartnerRoleAck{Partner: "ECOWAS", Role: demarchev1.PartnerRoleKind(1), Principal: "ecowas-liaison"}
		for _, who := range []string{temporalx.IdentityGateway, temporalx.IdentityWorker, temporalx.IdentityEarlyWarning, temporalx.IdentityAuditor, temporalx.IdentityObserver, temporalx.IdentityAdmin, "none"} {
			var err error
			if who == "none" {
				_, err = noCredential(t, s).SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{Namespace: s.Namespace(),
					WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: crisis.WorkflowID(id)}, SignalName: crisis.SignalPartnerAck})
			} else {
				err = temporalAs(t, s, who).SignalWorkflow(ctx, crisis.WorkflowID(id), "", crisis.SignalPartnerAck, ack)
			}
			attempt(t, wallTemporal, "partner acknowledgement signal (crisis.partner-ack) from another identity", who, refused(t, err, who, "SignalWorkflowExecution"))
		}
		// Another machine's signal from the gateway: refused too.
		err := temporalAs(t, s, temporalx.IdentityGateway).SignalWorkflow(ctx, crisis.WorkflowID(id), "", crisis.SignalRelapse, &demarchev1.CrisisRelapsed{CrisisId: id})
		attempt(t, wallTemporal, "crisis.relapse signal (a stage workflow's) sent by the gateway", temporalx.IdentityGateway, refused(t, err, temporalx.IdentityGateway, "SignalWorkflowExecution"))
		// The one identity that owns it: the authorizer lets it through.
		if err := temporalAs(t, s, temporalx.IdentityPartners).SignalWorkflow(ctx, crisis.WorkflowID(id), "", crisis.SignalPartnerAck, ack); err != nil {
			t.Fatalf("partners' own acknowledgement refused: %v", err)
		}
		attempt(t, wallTemporal, "partner acknowledgement signal (control)", temporalx.IdentityPartners, "allowed (its own signal)")
	})

	t.Run("terminate and reset", func(t *testing.T) {
		resetReq := &workflowservice.ResetWorkflowExecutionRequest{Namespace: s.Namespace(), WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: crisis.WorkflowID(id)},
			Reason: "attack", WorkflowTaskFinishEventId: 4, RequestId: "reset-attack"}
		for _, who := range []string{temporalx.IdentityGateway, temporalx.IdentityWorker, temporalx.IdentityAuditor, "none"} {
			var err error
			if who == "none" {
				_, err = noCredential(t, s).TerminateWorkflowExecution(ctx, &workflowservice.TerminateWorkflowExecutionRequest{Namespace: s.Namespace(),
					WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: crisis.WorkflowID(id)}, Reason: "cleaning up"})
			} else {
				err = temporalAs(t, s, who).TerminateWorkflow(ctx, crisis.WorkflowID(id), "", "cleaning up")
			}
			attempt(t, wallTemporal, "terminate a crisis workflow", who, refused(t, err, who, "TerminateWorkflowExecution"))
			if who == "none" {
				_, err = noCredential(t, s).ResetWorkflowExecution(ctx, resetReq)
			} else {
				_, err = temporalAs(t, s, who).ResetWorkflowExecution(ctx, resetReq)
			}
			attempt(t, wallTemporal, "reset a crisis workflow", who, refused(t, err, who, "ResetWorkflowExecution"))
		}
		if d, err := auditor.DescribeWorkflowExecution(ctx, crisis.WorkflowID(id), ""); err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("after the refused terminations: %v %v, want running", d.GetWorkflowExecutionInfo().GetStatus(), err)
		}
		// The admin may: a second crisis is reset, then terminated.
		admin := temporalAs(t, s, temporalx.IdentityAdmin)
		other := openCrisis(t, s, auditor, "Second standoff")
		resp, err := admin.ResetWorkflowExecution(ctx, &workflowservice.ResetWorkflowExecutionRequest{Namespace: s.Namespace(),
			WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: crisis.WorkflowID(other)}, Reason: "admin reset", WorkflowTaskFinishEventId: 4, RequestId: "reset-admin"})
		if err != nil {
			t.Fatalf("admin reset: %v", err)
		}
		attempt(t, wallTemporal, "reset a crisis workflow", temporalx.IdentityAdmin, "allowed (new run "+resp.GetRunId()+"; reported as an outside operation)")
		if err := admin.TerminateWorkflow(ctx, crisis.WorkflowID(other), "", "admin terminate"); err != nil {
			t.Fatalf("admin terminate: %v", err)
		}
		if d, err := auditor.DescribeWorkflowExecution(ctx, crisis.WorkflowID(other), ""); err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
			t.Fatalf("after the admin's termination: %v %v", d.GetWorkflowExecutionInfo().GetStatus(), err)
		}
		attempt(t, wallTemporal, "terminate a crisis workflow", temporalx.IdentityAdmin, "allowed (reported as an outside operation)")
		// Even the admin cannot put words in a crisis's mouth.
		_, err = admin.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: crisis.WorkflowID(id), UpdateName: crisis.UpdateDecide,
			UpdateID: "forged-admin-2", Args: []any{forged}, WaitForStage: client.WorkflowUpdateStageCompleted})
		refused(t, err, temporalx.IdentityAdmin, "UpdateWorkflowExecution")
	})

	t.Run("no or forged credential", func(t *testing.T) {
		_, err := temporalx.Dial(ctx, s.TemporalAddress(), s.Namespace(), zap.NewNop(), temporalx.WithAPIKey(""))
		if err == nil || !errors.Is(err, temporalx.ErrNoCredential) || !strings.Contains(err.Error(), "no credential") {
			t.Fatalf("dial without a key: %v", err)
		}
		attempt(t, wallTemporal, "dial the Temporal frontend without a credential", "none", "refused: "+err.Error())
		key, err := os.ReadFile(s.TemporalKeyFile(temporalx.IdentityAuditor))
		if err != nil {
			t.Fatal(err)
		}
		forgedKey := temporalx.IdentityAdmin + "." + strings.SplitN(strings.TrimSpace(string(key)), ".", 2)[1]
		_, err = temporalx.Dial(ctx, s.TemporalAddress(), s.Namespace(), zap.NewNop(), temporalx.WithAPIKey(forgedKey))
		if err == nil || !strings.Contains(err.Error(), "API key not recognised") {
			t.Fatalf("dial with the auditor's secret claiming admin: %v", err)
		}
		attempt(t, wallTemporal, "dial with the auditor's secret under the admin's name", "auditor (forged admin)", "refused: "+err.Error())
	})

	t.Run("auditor reads", func(t *testing.T) {
		rows, err := crisis.List(ctx, auditor, crisis.Filter{}, 0)
		if err != nil || len(rows) == 0 {
			t.Fatalf("auditor list: %d rows, %v", len(rows), err)
		}
		if _, err := auditor.DescribeWorkflowExecution(ctx, crisis.WorkflowID(id), ""); err != nil {
			t.Fatalf("auditor describe: %v", err)
		}
		n := 0
		for it := auditor.GetWorkflowHistory(ctx, crisis.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); n++ {
			if _, err := it.Next(); err != nil {
				t.Fatalf("auditor history: %v", err)
			}
		}
		if n == 0 {
			t.Fatal("auditor history: no event")
		}
		attempt(t, wallTemporal, "list, describe and read the history of crises", temporalx.IdentityAuditor, fmt.Sprintf("allowed (%d crises, %d events)", len(rows), n))
	})

	t.Run("HTTP API", func(t *testing.T) {
		if s.TemporalHTTPPort() == 0 {
			t.Fatal("--temporal-http asked for, no HTTP API")
		}
		key, err := os.ReadFile(s.TemporalKeyFile(temporalx.IdentityAuditor))
		if err != nil {
			t.Fatal(err)
		}
		base := fmt.Sprintf("http://127.0.0.1:%d/api/v1/namespaces/%s/workflows", s.TemporalHTTPPort(), s.Namespace())
		call := func(method, url, key, host string) (int, string) {
			req, err := http.NewRequest(method, url, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			if host != "" {
				req.Host = host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		terminate := base + "/" + crisis.WorkflowID(id) + "/terminate"
		// A web page whose name a rebinding DNS points at 127.0.0.1: refused
		// for its Host, key or not.
		for _, k := range []string{"", strings.TrimSpace(string(key))} {
			who := "none"
			if k != "" {
				who = temporalx.IdentityAuditor
			}
			code, body := call("GET", base, k, "evil.example:"+fmt.Sprint(s.TemporalHTTPPort()))
			if code != http.StatusMisdirectedRequest || !strings.Contains(body, temporalembed.ErrHostRefused) {
				t.Fatalf("HTTP list with Host evil.example as %s: %d %s", who, code, body)
			}
			attempt(t, wallTemporal, "list crises through the Temporal HTTP API with Host: evil.example (DNS rebinding)", who, fmt.Sprintf("refused: %d %s", code, strings.TrimSpace(body)))
		}
		code, body := call("POST", terminate, "", "")
		if code != http.StatusUnauthorized || !strings.Contains(body, "no credential") {
			t.Fatalf("HTTP terminate without a key: %d %s", code, body)
		}
		attempt(t, wallTemporal, "terminate through the Temporal HTTP API without a key", "none", fmt.Sprintf("refused: %d %s", code, body))
		code, body = call("POST", terminate, strings.TrimSpace(string(key)), "")
		if code != http.StatusForbidden || !strings.Contains(body, "auditor may not call TerminateWorkflowExecution") {
			t.Fatalf("HTTP terminate as the auditor: %d %s", code, body)
		}
		attempt(t, wallTemporal, "terminate through the Temporal HTTP API", temporalx.IdentityAuditor, fmt.Sprintf("refused: %d %s", code, body))
		code, body = call("GET", base, strings.TrimSpace(string(key)), "")
		if code != http.StatusOK || !strings.Contains(body, crisis.WorkflowID(id)) {
			t.Fatalf("HTTP list as the auditor: %d %s", code, body)
		}
		attempt(t, wallTemporal, "list crises through the Temporal HTTP API", temporalx.IdentityAuditor, "allowed")
	})

	t.Run("UI reads as the observer", func(t *testing.T) {
		resp, err := http.Get(s.UIURL() + "/api/v1/namespaces/" + s.Namespace() + "/workflows")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), crisis.WorkflowID(id)) {
			t.Fatalf("UI workflow list: %d %s", resp.StatusCode, b)
		}
		req, _ := http.NewRequest("POST", s.UIURL()+"/api/v1/namespaces/"+s.Namespace()+"/workflows/"+crisis.WorkflowID(id)+"/terminate", strings.NewReader("{}"))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("UI terminate: %d %s", resp.StatusCode, b)
		}
		attempt(t, wallTemporal, "terminate through the Temporal UI", "observer (the UI's key)", fmt.Sprintf("refused: %d", resp.StatusCode))
	})
}
