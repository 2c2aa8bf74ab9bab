package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/gateway"
	"github.com/demarche/demarche/workflows/crisis"
	"github.com/demarche/demarche/workflows/trail"
)

func TestAuditCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Server(t)
	_, key, _ := ed25519.GenerateKey(nil)
	svc, err := audit.Start(ctx, audit.Config{NATSURL: srv.URL(), SigningKey: key}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	nc, js, err := natsx.Connect(srv.URL(), t.Name(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const id = "GN-20261127-CLIAU"
	pub := eventbus.NewPublisher(js, crisis.EventSource)
	route := eventbus.Route{Region: demarchev1.Region_REGION_AFRICA, Country: "GN", CrisisID: id}
	for i, stage := range []demarchev1.Stage{demarchev1.Stage_STAGE_WARNING, demarchev1.Stage_STAGE_GOOD_OFFICES} {
		if _, err := pub.Publish(ctx, route, eventbus.Event{ID: id + "-" + stage.Slug(), Time: time.Now(),
			Origin: eventbus.Origin{WorkflowID: crisis.WorkflowID(id), RunID: "run-1", HistoryEventID: int64(5 + i)},
			Data:   &demarchev1.StageEntered{CrisisId: id, Stage: stage, EnteredAt: timestamppb.Now()}}); err != nil {
			t.Fatal(i, err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if recs, _ := svc.Store.Records(ctx, audit.ChainOf(id), 0, 0); len(recs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the audit service never recorded the events")
		}
	}

	// The commands reach the audit service through the gateway, as an auditor.
	iss, err := authn.LoadOrCreateIssuer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	states := gateway.WithCrisisStates(func(_ context.Context, cid string) (*demarchev1.CrisisState, error) {
		if cid != id {
			return nil, fmt.Errorf("%w: %s", crisis.ErrNotFound, cid)
		}
		return &demarchev1.CrisisState{Crisis: &demarchev1.Crisis{Id: id, Confidentiality: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}}, nil
	})
	api := httptest.NewServer(gateway.NewHandler(nc, nil, iss.Verifier(), zap.NewNop(), states))
	t.Cleanup(api.Close)
	token, err := iss.Mint(authn.Claims{Subject: "auditor", Roles: []string{"auditor"}, Clearance: "confidential"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		app := &App{Server: api.URL, Token: token, Log: zap.NewNop(), Out: &out}
		cmd := NewAuditCmd(app)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	pubKey := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	out, err := run("verify", "--crisis", id, "--public-key", pubKey)
	if err != nil || !strings.Contains(out, "chain crisis."+id+" verifies: 3 records") || !strings.Contains(out, "head signed by key") {
		t.Fatalf("verify --crisis: %v\n%s", err, out)
	}
	if out, err = run("verify"); err != nil || !strings.Contains(out, "chain global verifies") {
		t.Fatalf("verify (global): %v\n%s", err, out)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err = run("verify", "--crisis", id, "--public-key", base64.StdEncoding.EncodeToString(other)); err == nil || !strings.Contains(err.Error(), "not by the trusted key") {
		t.Fatalf("verify with another trusted key: %v", err)
	}
	if _, err = run("verify", "--crisis", "x y"); err == nil || !strings.Contains(err.Error(), "crisis_id (--crisis)") {
		t.Fatalf("bad --crisis: %v", err)
	}
	// The read is recorded as the credential's, whatever a client says.
	recs, _ := svc.Store.Records(ctx, audit.ChainOf(id), 0, 0)
	if last := recs[len(recs)-1]; last.GetKind() != demarchev1.AuditRecordKind_AUDIT_RECORD_KIND_READ || last.GetPrincipal() != "auditor" {
		t.Fatalf("last record of the chain: %v", last)
	}
	for _, args := range [][]string{{"export", "--out", "x.tar.gz"}, {"reconcile"}} {
		if _, err = run(args...); err == nil || !strings.Contains(err.Error(), "(--crisis): is required") {
			t.Fatalf("%v without --crisis: %v", args, err)
		}
	}

	// Offline: a bundle verifies with no server; a modified one names the file.
	h, err := trail.LoadFile("../../workflows/crisis/testdata/CrisisResponse-drill.json")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := svc.Store.Records(ctx, audit.ChainOf(id), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := svc.Store.Head(ctx, audit.ChainOf(id))
	var buf bytes.Buffer
	if _, err := audit.WriteBundle(&buf, audit.BundleInput{CrisisID: id, Histories: []audit.History{{WorkflowID: "crisis-" + id, History: h}},
		Chain: &demarchev1.AuditChain{Chain: audit.ChainOf(id), Records: chain, Head: head}, Key: key}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.gz")
	if err := os.WriteFile(good, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	srvDown := func(args ...string) (string, error) { // a NATS URL where nothing listens
		var out bytes.Buffer
		app := &App{NATSURL: "nats://127.0.0.1:1", Log: zap.NewNop(), Out: &out}
		cmd := NewAuditCmd(app)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	if out, err := srvDown("verify", "--bundle", good, "--public-key", pubKey); err != nil || !strings.Contains(out, "bundle "+good+" verifies") {
		t.Fatalf("verify --bundle: %v\n%s", err, out)
	}
	files, _ := audit.ReadBundle(bytes.NewReader(buf.Bytes()))
	files[audit.TrailFile] = append(files[audit.TrailFile], ' ')
	bad := filepath.Join(dir, "bad.tar.gz")
	if err := os.WriteFile(bad, repack(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := srvDown("verify", "--bundle", bad); err == nil || !strings.Contains(err.Error(), "bundle file trail.json: modified") {
		t.Fatalf("verify --bundle of a modified bundle: %v", err)
	}
}

func repack(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(b)
	}
	_ = tw.Close()
	_ = gw.Close()
	return out.Bytes()
}
