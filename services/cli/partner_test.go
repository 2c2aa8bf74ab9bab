package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/origin"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/workflows/crisis"
)

type recordingSignaller struct {
	mu   sync.Mutex
	acks []*demarchev1.PartnerRoleAck
}

func (r *recordingSignaller) SignalPartnerRole(_ context.Context, _ string, ack *demarchev1.PartnerRoleAck) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks = append(r.acks, ack)
	return nil
}

func (r *recordingSignaller) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acks)
}

func TestPartnerCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := zaptest.NewLogger(t)
	srv := natstest.Server(t)
	sig := &recordingSignaller{}
	svc, err := partners.Start(ctx, partners.Config{NATSURL: srv.URL()}, sig, log) // the embedded default registry
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	nc, js, err := natsx.Connect(srv.URL(), t.Name(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := &demarchev1.Crisis{Id: "GN-20261127-CLI00", Title: "Coup attempt", CountryCode: "GN", Region: demarchev1.Region_REGION_AFRICA,
		CrisisType: demarchev1.CrisisType_CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE, Severity: 4,
		Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED, OpenedAt: timestamppb.Now(), SharedWith: []string{"ECOWAS"}}
	// As the crisis workflow publishes it (the partners service refuses any other: pkg/origin).
	opened := eventbus.Event{ID: "cli-opened", Time: time.Now(), Data: &demarchev1.CrisisOpened{Crisis: c},
		Origin: eventbus.Origin{WorkflowID: origin.WorkflowIDPrefix + c.GetId(), RunID: "run-1", HistoryEventID: 5}}
	if _, err := eventbus.NewPublisher(js, origin.WorkflowSource).Publish(ctx, eventbus.RouteOf(c), opened); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, partners.CrisisBucket)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := kv.Get(ctx, c.GetId()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the partners service never learnt the crisis")
		}
	}

	// The commands reach the partners service through the gateway, as an
	// operator cleared for restricted crises (reads are audited: the audit
	// service runs too); the crisis's state stands in for its workflow.
	au, err := audit.Start(ctx, audit.Config{NATSURL: srv.URL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(au.Stop)
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	states := gateway.WithCrisisStates(func(_ context.Context, id string) (*demarchev1.CrisisState, error) {
		if id != c.GetId() {
			return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, id)
		}
		return &demarchev1.CrisisState{Crisis: c}, nil
	})
	api := httptest.NewServer(gateway.NewHandler(nc, nil, iss.Verifier(), log, states))
	t.Cleanup(api.Close)
	token, err := iss.Mint(authn.Claims{Subject: "liaison", Roles: []string{"duty-officer"}, Clearance: "restricted"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		app := &App{Server: api.URL, Token: token, Log: log, Out: &out}
		cmd := newPartnerCmd(app)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}

	out, err := run("list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME", "ECOWAS", "Economic Community of West African States", "demarche.partner.ECOWAS.>", "PIF", "Pacific Islands Forum",
		"ICGLR", "CARICOM", "OIC", "contact-group", "AU,ECOWAS,EU,OIC,World Bank,FR,US", "womens-network"} {
		if !strings.Contains(out, want) {
			t.Errorf("partner list does not show %q:\n%s", want, out)
		}
	}

	out, err = run("ack-role", "--partner", "ecowas", "--crisis", c.GetId(), "--role", "lead")
	if err != nil || !strings.Contains(out, "GN-20261127-CLI00: ECOWAS acknowledged as lead by liaison") {
		t.Fatalf("ack-role: %v\n%s", err, out)
	}
	if sig.count() != 1 {
		t.Fatalf("the workflow got %d signals, want 1", sig.count())
	}

	_, err = run("ack-role", "--partner", "AU", "--crisis", c.GetId(), "--role", "support")
	if !errors.Is(err, errs.ErrForbidden) || !strings.Contains(err.Error(), "not shared with AU") {
		t.Fatalf("AU on a crisis not shared with it: %v", err)
	}
	_, err = run("ack-role", "--partner", "NATO", "--crisis", c.GetId(), "--role", "support")
	if !errors.Is(err, errs.ErrNotFound) || !strings.Contains(err.Error(), "NATO") {
		t.Fatalf("unknown partner: %v", err)
	}
	_, err = run("ack-role", "--partner", "AU", "--role", "boss")
	if err == nil || !strings.Contains(err.Error(), `--role: "boss" is not a known role`) {
		t.Fatalf("bad role: %v", err)
	}
	_, err = run("ack-role", "--role", "lead")
	for _, want := range []string{"crisis_id (--crisis): is required", "ack.partner (--partner): is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing flags: error does not say %q: %v", want, err)
		}
	}
	if sig.count() != 1 {
		t.Fatalf("refused acknowledgements reached the workflow: %d signals", sig.count())
	}

	bad := filepath.Join(t.TempDir(), "partners.json")
	if err := os.WriteFile(bad, []byte(`{"partners": [{"name": "AU", "title": "African Union", "regions": ["atlantis"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run("validate", bad); err == nil || !strings.Contains(err.Error(), `partners[0] (AU): regions[0]: "atlantis" is not a region`) {
		t.Fatalf("validate of a bad registry: %v", err)
	}
}
