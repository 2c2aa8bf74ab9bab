package stack_test

import (
	"context"
	"path/filepath"
	"testing"

	"go.temporal.io/api/operatorservice/v1"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/temporalx"
)

// A data folder created before an attribute existed gets it at the next start.
func TestMissingSearchAttributesAreAdded(t *testing.T) {
	if testing.Short() {
		t.Skip("embedded Temporal; skipped with -short")
	}
	old := temporalx.SearchAttributes()
	creds := t.TempDir()
	delete(old, temporalx.SAActiveStages.GetName())
	srv, err := temporalembed.Start(temporalembed.Options{
		DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"), Namespace: "demarche", SearchAttributes: old, LogLevel: "error",
		CredentialsDir: creds,
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop() }()
	ctx := context.Background()
	defer temporalx.SetCredentialsFor(srv.HostPort(), creds)()
	tc, err := temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.As(temporalx.IdentityAdmin))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	has := func() bool {
		resp, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "demarche"})
		if err != nil {
			t.Fatal(err)
		}
		_, ok := resp.GetCustomAttributes()[temporalx.SAActiveStages.GetName()]
		return ok
	}
	if has() {
		t.Fatal("test setup: the attribute should be missing")
	}
	if err := temporalx.EnsureSearchAttributes(ctx, tc, "demarche"); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("EnsureSearchAttributes did not add DemarcheActiveStages")
	}
	if err := temporalx.EnsureSearchAttributes(ctx, tc, "demarche"); err != nil {
		t.Fatalf("second call is not a no-op: %v", err)
	}
}
