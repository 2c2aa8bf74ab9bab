// Package roster is the roster service: senior envoys, mediators and
// standby-team experts, ranked for a crisis and booked without double booking.
// State lives in a JetStream key-value bucket, so it survives restarts; the
// bucket's create-if-absent is what makes a booking exclusive even when many
// requests race.
//
// Bookings come only from decisions (authority.go): reserve carries out the
// crisis's envoy-appointment, release its closure (or undoes a failed
// appointment's bookings); the service checks the decision in the crisis's
// workflow and takes expert, role, who and drill flag from it.
package roster

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsrpc"
	"github.com/demarche/demarche/pkg/natsx"
	"github.com/demarche/demarche/pkg/temporalx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/crisis"
)

// Bucket is the key-value bucket holding experts and bookings:
//
//	expert.<id>              the expert
//	booked.<expert id>       the expert's current assignment (exclusive)
//	role.<crisis>.<role>     the assignment of a crisis's role (idempotency)
//	drill.booked.<crisis>.<expert id>  the same, in the drills' shadow booking space
//	drill.role.<crisis>.<role>
//
// Drills book the same experts under the drill. prefix, with the same rules,
// so a drill never holds an expert against a real crisis (and a real booking
// never stops a drill). Each drill's bookings are its own world: an expert is
// booked once per drill, so fifty drills at once do not queue for the five
// senior envoys as fifty real crises would (a drill rehearses one crisis's
// response, not the roster's scarcity).
const Bucket = "DEMARCHE_ROSTER"

// space is the key prefix of a booking space: "" for real crises, "drill."
// for drills.
func space(drill bool) string {
	if drill {
		return "drill."
	}
	return ""
}

// Store is the roster's durable state and rules, usable without NATS micro.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
	// decisions is where reservations and releases are checked.
	decisions crisis.DecisionSource
}

// Resources is the roster bucket, for the provisioning identity (the service
// itself only binds to it).
func Resources() natsx.Resources {
	return natsx.Resources{Buckets: []jetstream.KeyValueConfig{{
		Bucket: Bucket, Description: "Démarche roster: experts and bookings", History: 5, Storage: jetstream.FileStorage,
	}}}
}

// OpenStore opens the bucket (creating it only where nothing provisioned it).
// Reserve and Release act only on decisions decisions finds (nil: refused).
func OpenStore(ctx context.Context, js jetstream.JetStream, decisions crisis.DecisionSource) (*Store, error) {
	kv, err := natsx.KeyValue(ctx, js, Resources().Buckets[0])
	if err != nil {
		return nil, fmt.Errorf("roster %w", err)
	}
	return &Store{kv: kv, now: time.Now, decisions: decisions}, nil
}

// PutExpert adds or replaces an expert.
func (s *Store) PutExpert(ctx context.Context, e *demarchev1.Expert) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errs.ErrInvalid, err)
	}
	b, err := proto.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, "expert."+e.GetId(), b); err != nil {
		return fmt.Errorf("store expert %s: %w", e.GetId(), err)
	}
	return nil
}

// Experts lists the roster, by id.
func (s *Store) Experts(ctx context.Context) ([]*demarchev1.Expert, error) {
	var out []*demarchev1.Expert
	err := s.each(ctx, "expert.>", func(b []byte) error {
		var e demarchev1.Expert
		if err := proto.Unmarshal(b, &e); err != nil {
			return err
		}
		out = append(out, &e)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out, err
}

// Assignments lists bookings of a booking space (real, or drills'), of one
// crisis or (empty id) all.
func (s *Store) Assignments(ctx context.Context, crisisID string, drill bool) ([]*demarchev1.Assignment, error) {
	var out []*demarchev1.Assignment
	err := s.each(ctx, space(drill)+"booked.>", func(b []byte) error {
		var a demarchev1.Assignment
		if err := proto.Unmarshal(b, &a); err != nil {
			return err
		}
		if crisisID == "" || a.GetCrisisId() == crisisID {
			out = append(out, &a)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetCrisisId() != out[j].GetCrisisId() {
			return out[i].GetCrisisId() < out[j].GetCrisisId()
		}
		return out[i].GetRole() < out[j].GetRole()
	})
	return out, err
}

func (s *Store) each(ctx context.Context, filter string, fn func([]byte) error) error {
	lister, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return fmt.Errorf("roster: list %s: %w", filter, err)
	}
	for key := range lister.Keys() {
		entry, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("roster: get %s: %w", key, err)
		}
		if err := fn(entry.Value()); err != nil {
			return fmt.Errorf("roster: decode %s: %w", key, err)
		}
	}
	return nil
}

func (s *Store) expert(ctx context.Context, id string) (*demarchev1.Expert, error) {
	entry, err := s.kv.Get(ctx, "expert."+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: no expert %q on the roster", errs.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	var e demarchev1.Expert
	return &e, proto.Unmarshal(entry.Value(), &e)
}

func (s *Store) assignment(ctx context.Context, key string) (*demarchev1.Assignment, uint64, error) {
	entry, err := s.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	var a demarchev1.Assignment
	return &a, entry.Revision(), proto.Unmarshal(entry.Value(), &a)
}

func roleKey(crisisID, role string, drill bool) string {
	return space(drill) + "role." + crisisID + "." + role
}

func bookedKey(expertID, crisisID string, drill bool) string {
	if drill {
		return space(drill) + "booked." + crisisID + "." + expertID
	}
	return "booked." + expertID
}

// Reserve books an expert for a crisis's role. The same crisis and role
// reserved again returns the first booking (replayed). An expert booked
// elsewhere is refused with ErrConflict: create-if-absent on the expert's
// booking key lets exactly one of any number of racing requests win.
func (s *Store) Reserve(ctx context.Context, req *demarchev1.ReserveRequest) (*demarchev1.ReserveResponse, error) {
	req, err := s.reserveAuthority(ctx, req)
	if err != nil {
		return nil, err
	}
	if existing, _, err := s.assignment(ctx, roleKey(req.GetCrisisId(), req.GetRole(), req.GetDrill())); err == nil {
		return &demarchev1.ReserveResponse{Assignment: existing, Replayed: true}, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("roster: %w", err)
	}
	e, err := s.expert(ctx, req.GetExpertId())
	if err != nil {
		return nil, err
	}
	if !e.GetAvailable() {
		return nil, fmt.Errorf("%w: %s is not available for deployment", errs.ErrConflict, e.GetName())
	}
	a := &demarchev1.Assignment{ExpertId: req.GetExpertId(), CrisisId: req.GetCrisisId(), Role: req.GetRole(),
		ReservedAt: timestamppb.New(s.now()), ReservedBy: req.GetReservedBy(), Drill: req.GetDrill(), Decision: req.GetDecision()}
	b, err := proto.Marshal(a)
	if err != nil {
		return nil, err
	}
	bookedKey := bookedKey(req.GetExpertId(), req.GetCrisisId(), req.GetDrill())
	if _, err := s.kv.Create(ctx, bookedKey, b); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("roster: book %s: %w", req.GetExpertId(), err)
		}
		other, _, gerr := s.assignment(ctx, bookedKey)
		if gerr != nil {
			return nil, fmt.Errorf("roster: %w", gerr)
		}
		if other.GetCrisisId() != req.GetCrisisId() || other.GetRole() != req.GetRole() {
			return nil, fmt.Errorf("%w: %s is already assigned to crisis %s as %s", errs.ErrConflict, e.GetName(), other.GetCrisisId(), other.GetRole())
		}
		a = other // an earlier attempt of this very reservation got this far
		b, _ = proto.Marshal(a)
	}
	if _, err := s.kv.Create(ctx, roleKey(req.GetCrisisId(), req.GetRole(), req.GetDrill()), b); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("roster: record role: %w", err)
		}
		// Another request booked this role with another expert first: undo ours.
		winner, _, gerr := s.assignment(ctx, roleKey(req.GetCrisisId(), req.GetRole(), req.GetDrill()))
		if gerr != nil {
			return nil, fmt.Errorf("roster: %w", gerr)
		}
		if winner.GetExpertId() != a.GetExpertId() {
			if _, rev, err := s.assignment(ctx, bookedKey); err == nil {
				// best-effort undo: with LastRevision it fails only when the key changed since, and then it is not ours to delete
				_ = s.kv.Delete(ctx, bookedKey, jetstream.LastRevision(rev))
			}
		}
		return &demarchev1.ReserveResponse{Assignment: winner, Replayed: true}, nil
	}
	return &demarchev1.ReserveResponse{Assignment: a}, nil
}

// Release frees a crisis's role; releasing what is not booked is a no-op.
func (s *Store) Release(ctx context.Context, req *demarchev1.ReleaseRequest) (*demarchev1.ReleaseResponse, error) {
	if err := s.releaseAuthority(ctx, req); err != nil {
		return nil, err
	}
	a, rev, err := s.assignment(ctx, roleKey(req.GetCrisisId(), req.GetRole(), req.GetDrill()))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &demarchev1.ReleaseResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	bookedKey := bookedKey(a.GetExpertId(), a.GetCrisisId(), req.GetDrill())
	if cur, brev, err := s.assignment(ctx, bookedKey); err == nil && cur.GetCrisisId() == a.GetCrisisId() && cur.GetRole() == a.GetRole() {
		if err := s.kv.Delete(ctx, bookedKey, jetstream.LastRevision(brev)); err != nil {
			return nil, fmt.Errorf("roster: release %s: %w", a.GetExpertId(), err)
		}
	}
	if err := s.kv.Delete(ctx, roleKey(req.GetCrisisId(), req.GetRole(), req.GetDrill()), jetstream.LastRevision(rev)); err != nil {
		return nil, fmt.Errorf("roster: release role: %w", err)
	}
	return &demarchev1.ReleaseResponse{Released: a}, nil
}

// Search ranks available experts unbooked in the request's booking space: +3 per matching expertise, +2 for
// the region, +1 per shared language; kind must match when given.
func (s *Store) Search(ctx context.Context, req *demarchev1.RosterSearchRequest) (*demarchev1.RosterSearchResponse, error) {
	experts, err := s.Experts(ctx)
	if err != nil {
		return nil, err
	}
	booked := map[string]bool{}
	assignments, err := s.Assignments(ctx, "", req.GetDrill())
	if err != nil {
		return nil, err
	}
	for _, a := range assignments {
		if req.GetDrill() && req.GetCrisisId() != "" && a.GetCrisisId() != req.GetCrisisId() {
			continue // another drill's world
		}
		booked[a.GetExpertId()] = true
	}
	var out []*demarchev1.Candidate
	for _, e := range experts {
		if !e.GetAvailable() || booked[e.GetId()] || (req.GetKind() != 0 && e.GetKind() != req.GetKind()) {
			continue
		}
		c := &demarchev1.Candidate{Expert: e}
		for _, want := range req.GetExpertise() {
			for _, has := range e.GetExpertise() {
				if want == has {
					c.Score += 3
					c.Reasons = append(c.Reasons, "expertise "+want.Slug())
				}
			}
		}
		for _, r := range e.GetRegions() {
			if req.GetRegion() != 0 && r == req.GetRegion() {
				c.Score += 2
				c.Reasons = append(c.Reasons, "region "+r.Slug())
			}
		}
		for _, want := range req.GetLanguages() {
			for _, has := range e.GetLanguages() {
				if strings.EqualFold(want, has) {
					c.Score++
					c.Reasons = append(c.Reasons, "speaks "+has)
				}
			}
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetScore() > out[j].GetScore() })
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 10
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return &demarchev1.RosterSearchResponse{Candidates: out}, nil
}

// Service is the running roster micro service.
type Service struct {
	nc    *nats.Conn
	svc   *natsrpc.Server
	Store *Store
	tc    client.Client // the read-only Temporal client it dialled, if any
}

// Config configures the roster service.
type Config struct {
	NATSURL string
	// Experts are the configured roster (LoadRoster; DemoRoster in
	// demarche dev): required, applied at each start (Store.Apply).
	Experts []*demarchev1.Expert
	// Decisions answers for the crises' workflows: reservations and releases
	// act only on a decision found there. Nil: the service dials Temporal at
	// TemporalAddress as the roster identity (read-only on crisis workflows);
	// without either, all are refused.
	Decisions                  crisis.DecisionSource
	TemporalAddress, Namespace string
}

// Start is StartWith with a decision source (tests, and callers that share a client).
func Start(ctx context.Context, natsURL string, experts []*demarchev1.Expert, decisions crisis.DecisionSource, log *zap.Logger) (*Service, error) {
	return StartWith(ctx, Config{NATSURL: natsURL, Experts: experts, Decisions: decisions}, log)
}

// StartWith connects, opens the store, applies the configured roster, and serves the
// endpoints under demarche.roster (search, reserve, release, assignments, experts).
func StartWith(ctx context.Context, cfg Config, log *zap.Logger) (*Service, error) {
	log = log.Named("roster")
	if len(cfg.Experts) == 0 {
		return nil, fmt.Errorf("%w: roster: no experts configured: pass a roster file (demarche serve roster --roster FILE; see deploy/roster.example.yaml); the demo roster is for demarche dev only", errs.ErrInvalid)
	}
	var tc client.Client
	if cfg.Decisions == nil && cfg.TemporalAddress != "" {
		c, err := temporalx.Dial(ctx, cfg.TemporalAddress, cfg.Namespace, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), temporalx.As("roster"))
		if err != nil {
			return nil, fmt.Errorf("roster: decisions are checked in the crises' workflows: %w", err)
		}
		tc, cfg.Decisions = c, crisis.TemporalDecisions{Client: c}
	}
	if cfg.Decisions == nil {
		log.Warn("no Temporal address: every reservation and release is refused (decisions cannot be checked)")
	}
	closeTC := func() {
		if tc != nil {
			tc.Close()
		}
	}
	nc, js, err := natsx.Connect(cfg.NATSURL, "demarche-roster", log)
	if err != nil {
		closeTC()
		return nil, fmt.Errorf("roster: %w", err)
	}
	st, err := OpenStore(ctx, js, cfg.Decisions)
	if err != nil {
		nc.Close()
		closeTC()
		return nil, err
	}
	stored, retired, err := st.Apply(ctx, cfg.Experts)
	if err != nil {
		nc.Close()
		closeTC()
		return nil, fmt.Errorf("roster: apply the configured roster: %w", err)
	}
	log.Info("roster configured", zap.Int("experts", len(cfg.Experts)), zap.Int("stored", stored), zap.Int("retired (no longer listed: unavailable)", retired))
	svc, err := natsrpc.Serve(nc, natsrpc.ServiceConfig{
		Name: natsrpc.RosterService, Version: "1.0.0", Group: natsrpc.RosterGroup, Log: log,
		Description: "Envoys, mediators and standby-team experts: search, reserve, release",
	},
		natsrpc.Typed("search", "the best available experts of a kind and region",
			func() *demarchev1.RosterSearchRequest { return &demarchev1.RosterSearchRequest{} }, st.Search),
		natsrpc.Typed("reserve", "books an expert in a role of a crisis (idempotent per crisis and role)",
			func() *demarchev1.ReserveRequest { return &demarchev1.ReserveRequest{} }, st.Reserve),
		natsrpc.Typed("release", "frees a role of a crisis",
			func() *demarchev1.ReleaseRequest { return &demarchev1.ReleaseRequest{} }, st.Release),
		natsrpc.Typed("assignments", "a crisis's bookings",
			func() *demarchev1.AssignmentsRequest { return &demarchev1.AssignmentsRequest{} },
			func(ctx context.Context, r *demarchev1.AssignmentsRequest) (*demarchev1.AssignmentsResponse, error) {
				as, err := st.Assignments(ctx, r.GetCrisisId(), r.GetDrill())
				return &demarchev1.AssignmentsResponse{Assignments: as}, err
			}),
		natsrpc.Typed("experts", "every expert on the roster",
			func() *demarchev1.AssignmentsRequest { return &demarchev1.AssignmentsRequest{} },
			func(ctx context.Context, _ *demarchev1.AssignmentsRequest) (*demarchev1.ExpertsResponse, error) {
				es, err := st.Experts(ctx)
				return &demarchev1.ExpertsResponse{Experts: es}, err
			}),
	)
	if err != nil {
		nc.Close()
		closeTC()
		return nil, fmt.Errorf("roster: %w", err)
	}
	log.Info("roster service ready", zap.String("subjects", natsrpc.RosterGroup+".>"))
	return &Service{nc: nc, svc: svc, Store: st, tc: tc}, nil
}

// Stop stops serving and disconnects.
func (s *Service) Stop() {
	s.svc.Stop()
	natsx.DrainClose(s.nc, 10*time.Second) // answer what was taken
	if s.tc != nil {
		s.tc.Close()
	}
}
