package crisis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/playbook"
)

// Sentinel errors for callers of this file's functions; each also matches its
// errs sentinel, which picks the HTTP status and micro code.
var (
	// ErrAlreadyOpen is returned by Open when a crisis with that id is already
	// running (errs.ErrConflict).
	ErrAlreadyOpen error = &errs.Error{Sentinel: errs.ErrConflict, Msg: "crisis already open"}
	// ErrClosed is returned by OpenOrSignal when the crisis was open once and
	// is closed: a closed crisis is never reopened by a warning (early warning
	// opens the situation's next episode instead) (errs.ErrConflict).
	ErrClosed error = &errs.Error{Sentinel: errs.ErrConflict, Msg: "crisis closed"}
	// ErrNotFound is returned when no crisis with that id is running (or it is
	// already closed) (errs.ErrNotFound).
	ErrNotFound error = &errs.Error{Sentinel: errs.ErrNotFound, Msg: "crisis not found"}
)

// Open validates the input and starts the crisis's workflow, with the playbook
// of its crisis type unless the input names one. Nothing starts when the input
// is invalid: the returned error names each failing field.
func Open(ctx context.Context, c client.Client, in *demarchev1.CrisisWorkflowInput) (client.WorkflowRun, error) {
	if in.GetPlaybook() == nil && in.GetCrisis() != nil {
		pb, err := playbook.ForType(in.GetCrisis().GetCrisisType())
		if err != nil {
			return nil, fmt.Errorf("open crisis: %w", err)
		}
		in.Playbook = pb
	}
	if in.GetDrillPolicy() != nil && in.GetCrisis() != nil {
		in.Crisis.Drill = true
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	cr := in.GetCrisis()
	var sa []temporal.SearchAttributeUpdate
	sa = append(sa, crisisAttributes(cr)...)
	sa = append(sa, temporalx.SAStage.ValueSet(demarchev1.Stage_STAGE_WARNING.Slug()))
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        WorkflowID(cr.GetId()),
		TaskQueue: TaskQueue,
		// An id names one crisis, ever: a closed (or failed, or terminated)
		// crisis's id is never started again, a drill's included.
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(sa...),
	}, WorkflowName, in)
	if err = errs.FromTemporal(err); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, fmt.Errorf("%w: %s (or closed: an id is never used twice)", ErrAlreadyOpen, cr.GetId())
		}
		return nil, fmt.Errorf("start crisis %s: %w", cr.GetId(), err)
	}
	return run, nil
}

// State asks the crisis's workflow for its current state (open or closed).
func State(ctx context.Context, c client.Client, crisisID string) (*demarchev1.CrisisState, error) {
	v, err := c.QueryWorkflow(ctx, WorkflowID(crisisID), "", QueryState)
	if err = errs.FromTemporal(err); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, crisisID)
		}
		return nil, fmt.Errorf("query crisis %s: %w", crisisID, err)
	}
	var st demarchev1.CrisisState
	if err := v.Get(&st); err != nil {
		return nil, fmt.Errorf("decode state of crisis %s: %w", crisisID, err)
	}
	// What the workflow cannot know: someone ended or reset it from outside.
	if st.OutsideOperations, err = OutsideOperations(ctx, c, crisisID); err != nil {
		return nil, err
	}
	return &st, nil
}

// Filter narrows a crisis listing; empty fields match everything.
type Filter struct {
	Stage      demarchev1.Stage
	Country    string
	CrisisType demarchev1.CrisisType
	Region     demarchev1.Region
	// SeverityMin and SeverityMax bound the severity (0: unbounded).
	SeverityMin, SeverityMax int32
	// OpenOnly lists running workflows only; ClosedOnly the others (closed,
	// and those ended from outside: terminated, failed).
	OpenOnly, ClosedOnly bool
	// ExcludeDrills leaves drills out (real figures never include them);
	// DrillsOnly lists drills only.
	ExcludeDrills, DrillsOnly bool
	// OpenedFrom and OpenedBefore bound when the crisis opened (its
	// workflow's start; zero: unbounded): From inclusive, Before exclusive.
	OpenedFrom, OpenedBefore time.Time
	// Visible limits the listing to what a principal may see: crises of these
	// confidentiality levels, or (for a partner) shared with SharedWith.
	// Unset (nil and "") lists everything: callers that serve people set it.
	Confidentialities []demarchev1.Confidentiality
	SharedWith        string
	// LeadPresence keeps the crises a field presence leads (a field
	// officer's listing).
	LeadPresence string
}

// Query is the Temporal visibility query for a filter.
func (f Filter) Query() string {
	clauses := []string{fmt.Sprintf("WorkflowType = '%s'", WorkflowName)}
	switch {
	case f.Stage == demarchev1.Stage_STAGE_CLOSED:
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SAStage.GetName(), f.Stage.Slug()))
	case f.Stage != demarchev1.Stage_STAGE_UNSPECIFIED:
		// Any running stage matches (parallel stages).
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SAActiveStages.GetName(), f.Stage.Slug()))
	}
	if f.Country != "" {
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SACountry.GetName(), quote(f.Country)))
	}
	if f.CrisisType != demarchev1.CrisisType_CRISIS_TYPE_UNSPECIFIED {
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SACrisisType.GetName(), f.CrisisType.Slug()))
	}
	if f.Region != demarchev1.Region_REGION_UNSPECIFIED {
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SARegion.GetName(), f.Region.Slug()))
	}
	if f.SeverityMin > 0 {
		clauses = append(clauses, fmt.Sprintf("%s >= %d", temporalx.SASeverity.GetName(), f.SeverityMin))
	}
	if f.SeverityMax > 0 {
		clauses = append(clauses, fmt.Sprintf("%s <= %d", temporalx.SASeverity.GetName(), f.SeverityMax))
	}
	if f.OpenOnly {
		clauses = append(clauses, "ExecutionStatus = 'Running'")
	}
	if f.ClosedOnly {
		clauses = append(clauses, "ExecutionStatus != 'Running'")
	}
	if f.ExcludeDrills {
		clauses = append(clauses, fmt.Sprintf("%s = false", temporalx.SADrill.GetName()))
	}
	if f.DrillsOnly {
		clauses = append(clauses, fmt.Sprintf("%s = true", temporalx.SADrill.GetName()))
	}
	if !f.OpenedFrom.IsZero() {
		clauses = append(clauses, fmt.Sprintf("StartTime >= '%s'", f.OpenedFrom.UTC().Format(time.RFC3339Nano)))
	}
	if !f.OpenedBefore.IsZero() {
		clauses = append(clauses, fmt.Sprintf("StartTime < '%s'", f.OpenedBefore.UTC().Format(time.RFC3339Nano)))
	}
	if f.LeadPresence != "" {
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SALeadPresence.GetName(), quote(f.LeadPresence)))
	}
	switch {
	case f.SharedWith != "":
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", temporalx.SASharedWith.GetName(), quote(f.SharedWith)))
	case f.Confidentialities != nil:
		levels := make([]string, len(f.Confidentialities))
		for i, c := range f.Confidentialities {
			levels[i] = "'" + c.Slug() + "'"
		}
		if len(levels) == 0 {
			levels = []string{"'none'"}
		}
		clauses = append(clauses, fmt.Sprintf("%s IN (%s)", temporalx.SAConfidentiality.GetName(), strings.Join(levels, ", ")))
	}
	return strings.Join(clauses, " AND ")
}

// quote keeps a value inside its quotes in a visibility query.
func quote(s string) string { return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) }

// Summary is one row of a crisis listing, read from visibility.
type Summary struct {
	CrisisID   string `json:"crisis_id"`
	Stage      string `json:"stage"`
	Country    string `json:"country"`
	CrisisType string `json:"crisis_type"`
	Region     string `json:"region,omitempty"`
	Severity   int64  `json:"severity"`
	Drill      bool   `json:"drill,omitempty"`
	// Confidentiality is public, restricted or confidential.
	Confidentiality string `json:"confidentiality"`
	Status          string `json:"status"`
	StartedAt       string `json:"started_at"`
	// Started is StartedAt as a time.
	Started time.Time `json:"-"`
	// Title and Outcome are not in visibility (a title is never stored in
	// clear): set only by a search that read the crisis's state
	// (services/gateway/app's List with a text or an outcome).
	Title   string `json:"title,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

// Proto is the row as the API's CrisisSummary.
func (s Summary) Proto() *demarchev1.CrisisSummary {
	return &demarchev1.CrisisSummary{CrisisId: s.CrisisID, Stage: s.Stage, Country: s.Country, CrisisType: s.CrisisType,
		Severity: int32(s.Severity), Confidentiality: s.Confidentiality, Status: s.Status, StartedAt: timestamppb.New(s.Started),
		Region: s.Region, Drill: s.Drill, Title: s.Title, Outcome: s.Outcome}
}

// listPage is how many rows List asks visibility for at a time: Temporal's
// default largest page (frontend.visibilityMaxPageSize; a server set lower
// answers its own largest). On SQL visibility every page is one query that
// reads about half the rows the filter selects (its cursor is no seekable
// range), so listing N rows in pages of P reads ~N²/2P: fewer, larger pages
// read several times fewer rows (docs/performance.md, "Crisis list").
const listPage = 1000

// List lists crises through Temporal visibility (no side table), newest first.
func List(ctx context.Context, c client.Client, f Filter, limit int) ([]Summary, error) {
	var out []Summary
	var token []byte
	for {
		page := listPage
		if limit > 0 {
			page = min(page, limit-len(out)) // no more rows than the limit leaves
		}
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: f.Query(), NextPageToken: token, PageSize: int32(page),
		})
		if err != nil {
			return nil, fmt.Errorf("list crises (%s): %w", f.Query(), errs.FromTemporal(err))
		}
		for _, e := range resp.GetExecutions() {
			sa := e.GetSearchAttributes()
			s := Summary{
				CrisisID:  strings.TrimPrefix(e.GetExecution().GetWorkflowId(), workflowIDPrefix),
				Status:    strings.ToLower(strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")),
				StartedAt: e.GetStartTime().AsTime().UTC().Format("2006-01-02 15:04:05Z"),
				Started:   e.GetStartTime().AsTime().UTC(),
			}
			s.Stage = keyword(sa, temporalx.SAStage.GetName())
			s.Country = keyword(sa, temporalx.SACountry.GetName())
			s.CrisisType = keyword(sa, temporalx.SACrisisType.GetName())
			s.Region = keyword(sa, temporalx.SARegion.GetName())
			s.Drill = boolAttr(sa, temporalx.SADrill.GetName())
			s.Severity = intAttr(sa, temporalx.SASeverity.GetName())
			s.Confidentiality = keyword(sa, temporalx.SAConfidentiality.GetName())
			out = append(out, s)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

func keyword(sa *common.SearchAttributes, name string) string {
	var s string
	if p, ok := sa.GetIndexedFields()[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s) // an attribute that does not decode reads as unset, like a missing one
	}
	return s
}

func boolAttr(sa *common.SearchAttributes, name string) bool {
	var b bool
	if p, ok := sa.GetIndexedFields()[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &b) // an attribute that does not decode reads as unset, like a missing one
	}
	return b
}

func intAttr(sa *common.SearchAttributes, name string) int64 {
	var n int64
	if p, ok := sa.GetIndexedFields()[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &n) // an attribute that does not decode reads as unset, like a missing one
	}
	return n
}

// Decide sends a decision to a crisis (the crisis.decide update) and returns it
// as recorded. A rejected decision changes nothing; the error names the rule
// or field and matches its sentinel (see updateError).
func Decide(ctx context.Context, c client.Client, crisisID, requestID string, req *demarchev1.DecisionRequest) (*demarchev1.DecisionRecord, error) {
	var rec demarchev1.DecisionRecord
	if err := update(ctx, c, crisisID, requestID, UpdateDecide, req, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Control sends an operator control (UpdateEscalate, UpdateSkipStage, ...)
// and returns the crisis's state after it. A refused control changes nothing;
// the error names the rule or field and matches its sentinel (see updateError).
func Control(ctx context.Context, c client.Client, crisisID, requestID, name string, arg demarchev1.Validator) (*demarchev1.CrisisState, error) {
	var st demarchev1.CrisisState
	if err := update(ctx, c, crisisID, requestID, name, arg, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// update runs one update to completion; input rules are checked here first,
// so a bad request never reaches the crisis.
func update(ctx context.Context, c client.Client, crisisID, requestID, name string, arg demarchev1.Validator, out any) error {
	if err := arg.Validate(); err != nil {
		return err
	}
	var err error
	for attempt := 1; ; attempt++ {
		var h client.WorkflowUpdateHandle
		h, err = c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: WorkflowID(crisisID), UpdateName: name, UpdateID: requestID,
			Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, out)
		}
		// The workflow task that carried the update failed before the
		// update was accepted (the crisis was continuing as new while
		// signals kept arriving: the server refuses that task and makes
		// another): nothing was applied, so it is sent again.
		var notReady *serviceerror.WorkflowNotReady
		if err == nil || !errors.As(err, &notReady) || attempt == updateAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return updateError(crisisID, name, err)
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
	if err != nil {
		return updateError(crisisID, name, err)
	}
	return nil
}

// updateAttempts bounds how often an update is sent again after the
// workflow task carrying it failed.
const updateAttempts = 5

// updateError names a failed update in the crisis's words; which sentinel it
// matches is errs.FromTemporal's one mapping. A refusal by the crisis (or by
// a service the crisis asked) reads "rejected: <the rule or field>" and
// matches its sentinel: errs.ErrRule (a rule, 422), errs.ErrInvalid (invalid
// input, 400), errs.ErrForbidden, errs.ErrNotFound or errs.ErrConflict (a
// service's refusal). A crisis that is not running is ErrNotFound.
func updateError(crisisID, name string, err error) error {
	mapped := errs.FromTemporal(err)
	var appErr *temporal.ApplicationError
	switch {
	case mapped != err && errors.As(err, &appErr):
		return fmt.Errorf("rejected: %w", mapped)
	case errors.Is(mapped, errs.ErrNotFound):
		return fmt.Errorf("%w (or already closed): %s", ErrNotFound, crisisID)
	}
	return fmt.Errorf("%s on crisis %s: %w", name, crisisID, mapped)
}

// Signal sends what a machine reports to a crisis (SignalPartnerAck from the
// partners service, ...); input rules are checked first.
func Signal(ctx context.Context, c client.Client, crisisID, name string, arg demarchev1.Validator) error {
	if err := arg.Validate(); err != nil {
		return err
	}
	if err := errs.FromTemporal(c.SignalWorkflow(ctx, WorkflowID(crisisID), "", name, arg)); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return fmt.Errorf("%w (or already closed): %s", ErrNotFound, crisisID)
		}
		return fmt.Errorf("signal %s to crisis %s: %w", name, crisisID, err)
	}
	return nil
}

// OpenOrSignal opens the crisis with a warning attached, or, when its workflow
// is already running, only attaches the warning: Temporal's signal-with-start,
// so concurrent callers for one crisis id never open two crises. A crisis that
// ran once and closed is not started again (ErrClosed): its id names one
// episode only.
func OpenOrSignal(ctx context.Context, c client.Client, in *demarchev1.CrisisWorkflowInput, w *demarchev1.Warning) (client.WorkflowRun, error) {
	if in.GetPlaybook() == nil && in.GetCrisis() != nil {
		pb, err := playbook.ForType(in.GetCrisis().GetCrisisType())
		if err != nil {
			return nil, fmt.Errorf("open crisis: %w", err)
		}
		in.Playbook = pb
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	cr := in.GetCrisis()
	sa := append(crisisAttributes(cr), temporalx.SAStage.ValueSet(demarchev1.Stage_STAGE_WARNING.Slug()))
	run, err := c.SignalWithStartWorkflow(ctx, WorkflowID(cr.GetId()), SignalWarning, w, client.StartWorkflowOptions{
		ID: WorkflowID(cr.GetId()), TaskQueue: TaskQueue, TypedSearchAttributes: temporal.NewSearchAttributes(sa...),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}, WorkflowName, in)
	if err = errs.FromTemporal(err); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, fmt.Errorf("%w: %s", ErrClosed, cr.GetId())
		}
		return nil, fmt.Errorf("open or signal crisis %s: %w", cr.GetId(), err)
	}
	return run, nil
}

// IsOpen says whether the crisis's workflow is running (false when it never
// ran or is closed).
func IsOpen(ctx context.Context, c client.Client, crisisID string) (bool, error) {
	d, err := c.DescribeWorkflowExecution(ctx, WorkflowID(crisisID), "")
	if err = errs.FromTemporal(err); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("describe crisis %s: %w", crisisID, err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}
