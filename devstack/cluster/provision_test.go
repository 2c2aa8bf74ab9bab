package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/demarche/demarche/devstack/temporalembed"
	"github.com/demarche/demarche/pkg/natstest"
	"github.com/demarche/demarche/pkg/ports"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/platform"
)

// Provisioning Temporal registers the namespace and every search attribute
// once; run again, it changes nothing. A namespace holding one of Démarche's
// attributes with another type is refused, naming it.
func TestProvisionTemporal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	creds := t.TempDir()
	srv, err := temporalembed.Start(temporalembed.Options{
		DatabaseFile:   filepath.Join(t.TempDir(), "temporal.db"),
		Namespace:      "wrong",
		CredentialsDir: creds,
		// Someone registered DemarcheStage as a number before Démarche came.
		SearchAttributes: map[string]enumspb.IndexedValueType{temporalx.SAStage.GetName(): enumspb.INDEXED_VALUE_TYPE_INT},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	t.Cleanup(temporalx.SetCredentialsFor(srv.HostPort(), creds))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := temporalx.Dial(ctx, srv.HostPort(), "demarche", zap.NewNop(), temporalx.As(temporalx.IdentityAdmin))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	first, err := platform.ProvisionTemporal(ctx, c, "demarche", 0)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for name := range temporalx.SearchAttributes() {
		all = append(all, name)
	}
	slices.Sort(all)
	if !first.NamespaceCreated || !slices.Equal(first.AttributesAdded, all) {
		t.Fatalf("first run: %+v; want the namespace registered and %v added", first, all)
	}
	second, err := platform.ProvisionTemporal(ctx, c, "demarche", 0)
	if err != nil {
		t.Fatal(err)
	}
	if second.NamespaceCreated || len(second.AttributesAdded) != 0 {
		t.Fatalf("second run changed something: %+v", second)
	}

	_, err = platform.ProvisionTemporal(ctx, c, "wrong", 0)
	if !errors.Is(err, platform.ErrUnfit) || !strings.Contains(err.Error(), "DemarcheStage is") || !strings.Contains(err.Error(), "wrong type") {
		t.Fatalf("want a refusal naming DemarcheStage's wrong type, got %v", err)
	}
}

// A Temporal that does not answer is refused with its address, after NATS
// was provisioned (each step is idempotent: the next run completes it).
func TestProvisionRefusesAnUnreachableTemporal(t *testing.T) {
	nats := natstest.Server(t)
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = platform.Provision(ctx, platform.Config{NATSURL: nats.URL(), Replicas: 1, TemporalAddress: addr, Namespace: "demarche"}, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "Temporal") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("want a refusal naming Temporal at %s, got %v", addr, err)
	}
}
