// Package platform is what Démarche needs from the engines it runs on, and
// the one step that provisions it (`demarche admin provision`): every stream
// and key-value bucket on NATS JetStream, at the replica count the deployment
// asks for, and the Temporal namespace with Démarche's search attributes.
//
// It is idempotent: run twice, the second run changes nothing. It refuses,
// saying what is missing, when the NATS or Temporal it reaches cannot give
// Démarche what it needs (no JetStream, fewer JetStream servers than
// replicas, a search attribute already registered with another type).
//
// Replicas and durability (for docs/operations.md):
//
//   - Replicas 3 (production): every stream and bucket is a Raft group of
//     three servers; a write is acknowledged once a quorum (two of three)
//     has it, so one server can die (kill -9, disk lost) without losing an
//     acknowledged event, and the group keeps accepting writes. Five
//     replicas survive two failures at the cost of write latency; one
//     replica (demarche dev) survives nothing but a clean restart.
//   - sync_interval: by default JetStream acknowledges a write once it is
//     in the quorum's page caches and fsyncs every two minutes. With R3 an
//     acknowledged write is then lost only if two of three servers lose
//     power within the interval (the Jepsen finding on NATS 2.12.1: a
//     correlated power loss). deploy/nats sets sync_interval: always, so
//     "acknowledged" means "on a quorum of disks", at the price of one
//     fsync per write batch.
//     Choose the default interval only where the servers' power failures
//     are independent (separate racks or zones).
//   - placement: spread the three servers over three failure domains
//     (zones or racks) and tag them (server_tags: ["az:a"], ...); streams
//     may then ask for placement by tag. Démarche's streams ask for no tag,
//     so any three servers of the cluster host them: the cluster must have
//     at least as many JetStream servers as the replica count (provision
//     refuses otherwise).
package platform

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/demarche/demarche/pkg/eventbus"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	"github.com/demarche/demarche/services/audit"
	"github.com/demarche/demarche/services/earlywarning"
	"github.com/demarche/demarche/services/funding"
	"github.com/demarche/demarche/services/gateway/claims"
	"github.com/demarche/demarche/services/partners"
	"github.com/demarche/demarche/services/roster"
)

// ErrUnfit is returned when the NATS or Temporal reached cannot give Démarche
// what it needs; the message says what is missing.
var ErrUnfit = errors.New("not fit for Démarche")

// Resources are every stream and bucket of the platform, each with replicas
// copies (1 on one server, 3 on a production cluster), with a stream for each
// partner organisation named (none named: the embedded registry's).
func Resources(replicas int, partnerNames ...string) natsx.Resources {
	if replicas <= 0 {
		replicas = 1
	}
	r := eventbus.Resources(eventbus.StreamOptions{Replicas: replicas}).Merge(
		earlywarning.Resources(replicas), funding.Resources(), roster.Resources(), audit.Resources(), claims.Resources(),
		partners.Resources(eventbus.StreamOptions{Replicas: replicas}, partnerNames...))
	for i := range r.Streams {
		r.Streams[i].Replicas = replicas
	}
	for i := range r.Buckets {
		r.Buckets[i].Replicas = replicas
	}
	return r
}

// NATSReport says what ProvisionNATS found and did.
type NATSReport struct {
	Servers  int      // JetStream servers the client knows of in the cluster
	Cluster  string   // cluster name ("" for a lone server)
	Created  []string // streams and buckets created by this run
	Existing []string // streams and buckets that were there already
}

// ProvisionNATS creates (or brings to the wanted configuration) every stream
// and bucket with replicas copies, on the connection of the provisioning
// identity (the only one allowed to). partnerNames are the partner
// organisations of the registry the partners service runs with (each has its
// own stream); none: the embedded registry's.
func ProvisionNATS(ctx context.Context, nc *nats.Conn, replicas int, partnerNames ...string) (NATSReport, error) {
	var rep NATSReport
	if replicas <= 0 {
		replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return rep, err
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return rep, fmt.Errorf("%w: NATS at %s has no JetStream (start nats-server with jetstream enabled)", ErrUnfit, nc.ConnectedUrlRedacted())
		}
		return rep, fmt.Errorf("JetStream account info at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	rep.Cluster = nc.ConnectedClusterName()
	rep.Servers = len(nc.Servers())
	if rep.Servers == 0 {
		rep.Servers = 1
	}
	if replicas > 1 && rep.Cluster == "" {
		return rep, fmt.Errorf("%w: --replicas %d needs a NATS cluster of at least %d JetStream servers; %s is a lone server (use --replicas 1, or cluster it)", ErrUnfit, replicas, replicas, nc.ConnectedUrlRedacted())
	}
	if replicas > rep.Servers {
		return rep, fmt.Errorf("%w: --replicas %d needs at least %d JetStream servers; cluster %q has %d", ErrUnfit, replicas, replicas, rep.Cluster, rep.Servers)
	}
	res := Resources(replicas, partnerNames...)
	for _, cfg := range res.Streams {
		existed := true
		if _, err := js.Stream(ctx, cfg.Name); errors.Is(err, jetstream.ErrStreamNotFound) {
			existed = false
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return rep, fmt.Errorf("stream %s (replicas %d): %w", cfg.Name, replicas, explain(err))
		}
		rep.note(existed, "stream "+cfg.Name)
	}
	for _, cfg := range res.Buckets {
		existed := true
		if _, err := js.KeyValue(ctx, cfg.Bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
			existed = false
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return rep, fmt.Errorf("bucket %s (replicas %d): %w", cfg.Bucket, replicas, explain(err))
		}
		rep.note(existed, "bucket "+cfg.Bucket)
	}
	return rep, nil
}

func (r *NATSReport) note(existed bool, name string) {
	if existed {
		r.Existing = append(r.Existing, name)
	} else {
		r.Created = append(r.Created, name)
	}
}

// explain turns JetStream's terse placement errors into what to do.
func explain(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (strings.Contains(strings.ToLower(apiErr.Description), "insufficient resources") || strings.Contains(apiErr.Description, "no suitable peers")) {
		return fmt.Errorf("%w: the cluster cannot place the replicas (%s): are all its JetStream servers up?", ErrUnfit, apiErr.Description)
	}
	if errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "replicas > 1 not supported in non-clustered mode") {
		return fmt.Errorf("%w: %s", ErrUnfit, apiErr.Description)
	}
	return err
}

// TemporalReport says what ProvisionTemporal found and did.
type TemporalReport struct {
	NamespaceCreated bool
	AttributesAdded  []string
}

// DefaultRetention is how long Temporal keeps a closed crisis's history.
const DefaultRetention = 30 * 24 * time.Hour

// ProvisionTemporal registers the namespace (when missing) and adds the
// search attributes it lacks. An attribute registered under Démarche's name
// with another type is refused: Démarche's queries would break on it.
func ProvisionTemporal(ctx context.Context, c client.Client, namespace string, retention time.Duration) (TemporalReport, error) {
	var rep TemporalReport
	if retention <= 0 {
		retention = DefaultRetention
	}
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return rep, fmt.Errorf("%w: Temporal frontend does not answer its health check: %v", ErrUnfit, err)
	}
	ws := c.WorkflowService()
	_, err := ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	var notFound *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &notFound):
		_, err = ws.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        namespace,
			Description:                      "Démarche crises",
			WorkflowExecutionRetentionPeriod: durationpb.New(retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return rep, fmt.Errorf("register namespace %s: %w", namespace, err)
		}
		rep.NamespaceCreated = err == nil
	case err != nil:
		return rep, fmt.Errorf("describe namespace %s: %w", namespace, err)
	}
	// A namespace just registered takes a moment to reach every frontend's cache.
	var have *operatorservice.ListSearchAttributesResponse
	for attempt := 0; ; attempt++ {
		have, err = c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		if err == nil || attempt >= 50 || !errors.As(err, &notFound) {
			break
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return rep, fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	want := temporalx.SearchAttributes()
	missing := map[string]enumspb.IndexedValueType{}
	var wrong []string
	for name, t := range want {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = t
		case got != t:
			wrong = append(wrong, fmt.Sprintf("%s is %s, Démarche needs %s", name, got, t))
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return rep, fmt.Errorf("%w: namespace %s has search attributes of the wrong type: %s (they cannot be changed in place: use another namespace)", ErrUnfit, namespace, strings.Join(wrong, "; "))
	}
	if len(missing) > 0 {
		if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
			var invalid *serviceerror.InvalidArgument
			if errors.As(err, &invalid) {
				// SQL visibility stores have a fixed number of slots per type.
				return rep, fmt.Errorf("%w: namespace %s cannot take Démarche's search attributes %v: %s (its visibility store needs free slots for them)", ErrUnfit, namespace, slices.Sorted(maps.Keys(missing)), invalid.Message)
			}
			return rep, fmt.Errorf("add search attributes to %s: %w", namespace, err)
		}
		for name := range missing {
			rep.AttributesAdded = append(rep.AttributesAdded, name)
		}
		slices.Sort(rep.AttributesAdded)
	}
	return rep, nil
}

// Config is what Provision reaches.
type Config struct {
	// NATSURL carries the provisioning identity's credentials.
	NATSURL  string
	Replicas int
	// TemporalAddress and Namespace: the frontend and the crises' namespace.
	TemporalAddress, Namespace string
	Retention                  time.Duration
	// PartnerNames are the partner organisations of the partners service's
	// registry, each given its own stream (none: the embedded registry's).
	PartnerNames []string
}

// Report is what Provision did.
type Report struct {
	NATS     NATSReport
	Temporal TemporalReport
}

// Provision provisions NATS, then Temporal.
func Provision(ctx context.Context, cfg Config, log *zap.Logger) (Report, error) {
	var rep Report
	nc, _, err := natsx.Connect(cfg.NATSURL, "demarche-provision", log)
	if err != nil {
		return rep, err
	}
	defer nc.Close()
	if rep.NATS, err = ProvisionNATS(ctx, nc, cfg.Replicas, cfg.PartnerNames...); err != nil {
		return rep, fmt.Errorf("provision NATS: %w", err)
	}
	tc, err := temporalx.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), temporalx.As(temporalx.IdentityAdmin))
	if err != nil {
		return rep, fmt.Errorf("provision Temporal: %w", err)
	}
	defer tc.Close()
	if rep.Temporal, err = ProvisionTemporal(ctx, tc, cfg.Namespace, cfg.Retention); err != nil {
		return rep, fmt.Errorf("provision Temporal: %w", err)
	}
	return rep, nil
}
