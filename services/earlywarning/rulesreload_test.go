package earlywarning_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natstest"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/earlywarning"
)

// auditRecorder stands in for the audit service's rules-changed endpoint:
// one record per revision (the same revision again is the same record), or
// down while fail is set.
type auditRecorder struct {
	mu      sync.Mutex
	changes []*demarchev1.RulesChanged
	fail    error
}

func (a *auditRecorder) record(_ context.Context, ch *demarchev1.RulesChanged) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	for _, c := range a.changes {
		if c.GetRevision() == ch.GetRevision() {
			if !proto.Equal(c, ch) {
				return fmt.Errorf("revision %d recorded as %v, now sent as %v", ch.GetRevision(), c, ch)
			}
			return nil
		}
	}
	a.changes = append(a.changes, proto.Clone(ch).(*demarchev1.RulesChanged))
	return nil
}

func (a *auditRecorder) down(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

func (a *auditRecorder) all() []*demarchev1.RulesChanged {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*demarchev1.RulesChanged(nil), a.changes...)
}

// TestRulesApplySwapsAndRescores: rules applied on a running service are in
// force at once, without a restart: the situation below the old threshold is
// re-scored under the new version and crosses (one warning, the crisis
// opened, the version in its state and explanation); the change is recorded
// (who, old and new version, digest, revision) before it is answered; the
// same rules again change nothing; rules out of bounds are refused with line
// and field and change nothing; an instance started later, or running beside
// it, follows the applied rules rather than its own file and flags; rules that
// raise the threshold take the situation below.
func TestRulesApplySwapsAndRescores(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	audit := &auditRecorder{}
	// The flag's threshold (40) runs until rules are applied.
	cfg := earlywarning.Config{DefaultThreshold: 40, RecordRulesChange: audit.record}
	svc := startService(t, srv.URL(), cfg, opener)
	other := startService(t, srv.URL(), cfg, opener) // a second instance: follows the bucket
	ctx := context.Background()
	ml := demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE
	var sigs []*demarchev1.Signal
	for i, id := range []string{"ML1", "ML2", "ML3"} {
		sigs = append(sigs, signal("acled", id, "ML", ml, 6, t0.Add(time.Duration(i)*24*time.Hour)))
	}
	if resp, err := svc.Ingest(ctx, sigs); err != nil || resp.GetAccepted() != 3 || len(resp.GetCrises()) != 0 {
		t.Fatalf("ingest below the threshold: %v %v", resp, err)
	}
	before, err := svc.Score(ctx, "ML", ml)
	if err != nil {
		t.Fatal(err)
	}
	if before.GetScore() != 18 || before.GetThreshold() != 40 || before.GetAboveThreshold() {
		t.Fatalf("before: score %g threshold %g above %v", before.GetScore(), before.GetThreshold(), before.GetAboveThreshold())
	}
	defaultVersion := earlywarning.DefaultRules().Version
	if a, err := svc.ActiveRules(ctx, &demarchev1.ActiveRulesRequest{}); err != nil || a.GetChange().GetRevision() != 0 ||
		a.GetChange().GetVersion() != defaultVersion || string(a.GetRules()) != string(earlywarning.DefaultRules().Source) {
		t.Fatalf("the rules in force before any apply: %v %v", a.GetChange(), err)
	}

	// Threshold 15: the situation (18) crosses on the swap.
	lower := withScoring(t, "    default: 25", "    default: 15")
	want, err := earlywarning.ParseRules("lower.yaml", []byte(lower))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := svc.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: []byte(lower), Name: "lower.yaml", AppliedBy: "hannah"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.GetVersion() != want.Version || ch.GetPreviousVersion() != defaultVersion || ch.GetAppliedBy() != "hannah" || ch.GetRevision() == 0 ||
		ch.GetDigest() != earlywarning.RulesDigest([]byte(lower)) || ch.GetSituations() != 1 || ch.GetCrossings() != 1 || ch.GetUnchanged() {
		t.Fatalf("apply: %v", ch)
	}
	if got := audit.all(); len(got) != 1 || got[0].GetRevision() != ch.GetRevision() || got[0].GetVersion() != want.Version ||
		got[0].GetPreviousVersion() != defaultVersion || got[0].GetAppliedBy() != "hannah" || got[0].GetAppliedAt() == nil {
		t.Fatalf("audited: %v", got)
	}
	calls, opened := opener.snapshot()
	if len(calls) != 1 || len(opened) != 1 || !strings.Contains(calls[0].w.GetSummary(), "Threshold crossed") ||
		!strings.Contains(calls[0].w.GetSummary(), "re-scored under rules "+want.Version) || calls[0].w.GetRulesVersion() != want.Version {
		t.Fatalf("the crossing's warning: %d calls %v", len(calls), calls)
	}
	after, err := svc.Score(ctx, "ML", ml)
	if err != nil {
		t.Fatal(err)
	}
	h := after.GetHistory()
	if !after.GetAboveThreshold() || after.GetThreshold() != 15 || after.GetRulesVersion() != want.Version || after.GetCrossings() != 1 ||
		after.GetCrisisId() == "" || len(h) != 4 || !h[3].GetCrossing() || h[3].GetRulesVersion() != want.Version || h[3].GetThreshold() != 15 {
		t.Fatalf("after: above %v threshold %g version %s crossings %d crisis %q history %v", after.GetAboveThreshold(), after.GetThreshold(),
			after.GetRulesVersion(), after.GetCrossings(), after.GetCrisisId(), h)
	}
	if a, err := other.ActiveRules(ctx, &demarchev1.ActiveRulesRequest{}); err != nil || a.GetChange().GetRevision() != ch.GetRevision() ||
		a.GetChange().GetVersion() != want.Version || a.GetChange().GetAppliedBy() != "hannah" || string(a.GetRules()) != lower {
		t.Fatalf("the rules in force after the apply: %v %v", a.GetChange(), err)
	}
	// The other instance follows the bucket (its watch): the same threshold.
	eventually(t, "the other instance's threshold 15", func() bool {
		sc, err := other.Score(ctx, "ML", ml)
		return err == nil && sc.GetThreshold() == 15 && sc.GetRulesVersion() == want.Version
	})

	// The same rules again: nothing changes, nothing is recorded, no warning.
	again, err := svc.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: []byte(lower), Name: "again.yaml", AppliedBy: "hannah"})
	if err != nil || !again.GetUnchanged() || again.GetRevision() != ch.GetRevision() {
		t.Fatalf("the same rules again: %v %v", again, err)
	}
	if len(audit.all()) != 1 {
		t.Fatal("the same rules again were audited")
	}
	if calls, _ := opener.snapshot(); len(calls) != 1 {
		t.Fatalf("the same rules again raised a warning: %d calls", len(calls))
	}

	// Out of bounds: refused with line and field, nothing changes.
	bad := withScoring(t, "  window: 336h", "  window: 1h")
	_, err = svc.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: []byte(bad), Name: "bad.yaml", AppliedBy: "hannah"})
	if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "scoring.window: 1h is out of range") ||
		!strings.Contains(err.Error(), "line ") {
		t.Fatalf("rules out of bounds: %v", err)
	}
	if sc, err := svc.Score(ctx, "ML", ml); err != nil || sc.GetRulesVersion() != want.Version || sc.GetThreshold() != 15 || len(audit.all()) != 1 {
		t.Fatalf("after a refused apply: %v %v", sc, err)
	}

	// A new signal is planned under the rules in force.
	if _, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("acled", "ML4", "ML", ml, 1, t0.Add(4*24*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if sc, err := svc.Score(ctx, "ML", ml); err != nil || sc.GetHistory()[len(sc.GetHistory())-1].GetRulesVersion() != want.Version {
		t.Fatalf("a signal after the swap: %v %v", sc, err)
	}
	// It was attached to the open crisis (a warning of its own); nothing else since.
	calls, _ = opener.snapshot()
	if len(calls) != 2 || calls[1].w.GetSourceId() != "ML4" {
		t.Fatalf("after a signal above the threshold: %d calls", len(calls))
	}

	// Applied through the other instance: threshold 30 takes the situation (19) below.
	higher := withScoring(t, "    default: 25", "    default: 30")
	up, err := other.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: []byte(higher), Name: "higher.yaml", AppliedBy: "hannah"})
	if err != nil || up.GetPreviousVersion() != want.Version || up.GetSituations() != 1 || up.GetFellBelow() != 1 || up.GetCrossings() != 0 {
		t.Fatalf("higher threshold: %v %v", up, err)
	}
	eventually(t, "the first instance's threshold 30", func() bool {
		sc, err := svc.Score(ctx, "ML", ml)
		return err == nil && sc.GetThreshold() == 30 && !sc.GetAboveThreshold()
	})

	// An instance started now, with its own flag (threshold 40), runs the applied rules.
	late := startService(t, srv.URL(), cfg, opener)
	if sc, err := late.Score(ctx, "ML", ml); err != nil || sc.GetThreshold() != 30 || sc.GetRulesVersion() != up.GetVersion() {
		t.Fatalf("an instance started after the apply: %v %v", sc, err)
	}
	if calls, _ := opener.snapshot(); len(calls) != 2 {
		t.Fatalf("%d warnings; one crossing and one attachment were made", len(calls))
	}
}

// TestRulesApplyLeavesHistoricalSituationsQuiet: a situation whose signals
// are all older than the live horizon is re-scored under the new rules but
// raises nothing (as a historical import never does).
func TestRulesApplyLeavesHistoricalSituationsQuiet(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	audit := &auditRecorder{}
	svc := startService(t, srv.URL(), earlywarning.Config{RecordRulesChange: audit.record}, opener)
	ctx := context.Background()
	old := t0.Add(-200 * 24 * time.Hour)
	var sigs []*demarchev1.Signal
	for i, id := range []string{"GN1", "GN2", "GN3"} {
		sigs = append(sigs, signal("acled", id, "GN", coup, 6, old.Add(time.Duration(i)*time.Hour)))
	}
	if resp, err := svc.Ingest(ctx, sigs); err != nil || resp.GetHistorical() != 3 {
		t.Fatalf("historical ingest: %v %v", resp, err)
	}
	ch, err := svc.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: []byte(withScoring(t, "    default: 25", "    default: 15")), AppliedBy: "hannah"})
	if err != nil || ch.GetSituations() != 1 || ch.GetCrossings() != 0 {
		t.Fatalf("apply: %v %v", ch, err)
	}
	if calls, _ := opener.snapshot(); len(calls) != 0 {
		t.Fatalf("a historical situation raised %d warnings on a rules change", len(calls))
	}
	if sc, err := svc.Score(ctx, "GN", coup); err != nil || sc.GetAboveThreshold() || sc.GetRulesVersion() != ch.GetVersion() {
		t.Fatalf("historical situation after the change: %v %v", sc, err)
	}
}

// TestRulesApplyWhileAuditIsDown: when the audit trail does not answer, the
// rules are in force and re-scored all the same (every instance follows the
// bucket) and the apply says they are unrecorded (503); applying the same
// file again once audit is back records the change (the record the first
// apply would have written), and nothing is re-scored twice.
func TestRulesApplyWhileAuditIsDown(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	opener := newFakeOpener()
	audit := &auditRecorder{}
	svc := startService(t, srv.URL(), earlywarning.Config{RecordRulesChange: audit.record}, opener)
	ctx := context.Background()
	ml := demarchev1.CrisisType_CRISIS_TYPE_INTERCOMMUNAL_VIOLENCE
	if _, err := svc.Ingest(ctx, []*demarchev1.Signal{signal("acled", "ML1", "ML", ml, 20, t0)}); err != nil {
		t.Fatal(err)
	}
	lower := []byte(withScoring(t, "    default: 25", "    default: 15"))
	audit.down(fmt.Errorf("%w: audit stopped", errs.ErrUnavailable))
	_, err := svc.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: lower, Name: "lower.yaml", AppliedBy: "hannah"})
	if !errors.Is(err, errs.ErrUnavailable) || !strings.Contains(err.Error(), "did not record the change") {
		t.Fatalf("apply while audit is down: %v", err)
	}
	audit.down(nil)
	again, err := svc.ApplyRules(ctx, &demarchev1.ApplyRulesRequest{Rules: lower, Name: "lower.yaml", AppliedBy: "hannah"})
	if err != nil || !again.GetUnchanged() {
		t.Fatalf("the same file once audit is back: %v %v", again, err)
	}
	if got := audit.all(); len(got) != 1 || got[0].GetRevision() != again.GetRevision() || got[0].GetAppliedBy() != "hannah" ||
		got[0].GetPreviousVersion() != earlywarning.DefaultRules().Version {
		t.Fatalf("recorded: %v", got)
	}
	// The rules were in force from the first apply, which re-scored the
	// situation (it crossed once); the second re-scored nothing.
	if sc, err := svc.Score(ctx, "ML", ml); err != nil || sc.GetThreshold() != 15 || !sc.GetAboveThreshold() || sc.GetCrossings() != 1 {
		t.Fatalf("after the two applies: %v %v", sc, err)
	}
	if calls, _ := opener.snapshot(); len(calls) != 1 {
		t.Fatalf("%d warnings, one crossing", len(calls))
	}
}
