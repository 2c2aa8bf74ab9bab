package origin_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

const id = "GN-20261127-ORIGN"

func event(data any, source string, o eventbus.Origin) eventbus.Event {
	ev := eventbus.Event{ID: "e-1", Source: source, Subject: id, Time: time.Now(), Origin: o}
	switch d := data.(type) {
	case *demarchev1.CrisisOpened:
		ev.Data = d
	case *demarchev1.SharingChanged:
		ev.Data = d
	case *demarchev1.WarningRaised:
		ev.Data = d
	case *demarchev1.StageEntered:
		ev.Data = d
	}
	if et, err := eventbus.TypeOf(ev.Data); err == nil {
		ev.Type = et.CEType
	}
	return ev
}

func TestGuard(t *testing.T) {
	own := eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + id, RunID: "r", HistoryEventID: 5}
	child := eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + id + "-envoy-deployment-1", RunID: "r", HistoryEventID: 5}
	opened := &demarchev1.CrisisOpened{Crisis: &demarchev1.Crisis{Id: id}}
	sharing := &demarchev1.SharingChanged{CrisisId: id, SharedWith: []string{"EU"}}
	stage := &demarchev1.StageEntered{CrisisId: id}
	warning := &demarchev1.WarningRaised{CrisisId: id}
	for _, c := range []struct {
		name       string
		ev         eventbus.Event
		check, own string // "" passes, else a piece of the refusal
	}{
		{"the workflow's opening", event(opened, origin.WorkflowSource, own), "", ""},
		{"opening without origin", event(opened, origin.WorkflowSource, eventbus.Origin{}), "does not say which workflow run", "does not say which workflow run"},
		{"opening without history event", event(opened, origin.WorkflowSource, eventbus.Origin{WorkflowID: own.WorkflowID, RunID: "r"}), "does not say", "does not say"},
		{"opening from another crisis's workflow", event(opened, origin.WorkflowSource, eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + "GN-1", RunID: "r", HistoryEventID: 3}), "not from crisis", "not from crisis"},
		{"opening from a stage's child", event(opened, origin.WorkflowSource, child), "", "crisis's own workflow"},
		{"sharing from a stage's child", event(sharing, origin.WorkflowSource, child), "", "crisis's own workflow"},
		{"a stage's child's event", event(stage, origin.WorkflowSource, child), "", "crisis's own workflow"},
		{"opening from another source", event(opened, "/mallory", own), "is not the crisis workflow's", "is not the crisis workflow's"},
		{"opening as early warning", event(opened, origin.EarlyWarningSource, eventbus.Origin{}), "WarningRaised only", "WarningRaised only"},
		{"early warning's warning", event(warning, origin.EarlyWarningSource, eventbus.Origin{}), "", "comes from the crisis workflow only"},
	} {
		for _, k := range []struct {
			f    func(eventbus.Event) error
			want string
		}{{origin.Check, c.check}, {origin.RequireOwnWorkflow, c.own}} {
			err := k.f(c.ev)
			switch {
			case k.want == "" && err != nil:
				t.Errorf("%s: refused: %v", c.name, err)
			case k.want != "" && (!errors.Is(err, origin.ErrForged) || !strings.Contains(err.Error(), k.want)):
				t.Errorf("%s: %v, want a refusal naming %q", c.name, err, k.want)
			}
		}
	}
	mismatch := event(stage, origin.WorkflowSource, own)
	mismatch.Subject = "GN-20261127-OTHER"
	if err := origin.Check(mismatch); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("subject mismatch: %v", err)
	}
}
