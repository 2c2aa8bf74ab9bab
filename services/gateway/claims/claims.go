// Package claims lets a person say "I am on it" about a decision that waits
// for a role: a claim names the person (from the credential, never a body),
// is seen by everyone who sees the crisis, and lapses by itself after a TTL
// unless its holder releases it first. A claim is advisory: it never stops
// anyone holding the role from taking the decision, it only tells the others
// that someone is.
//
// Claims live in the gateway's own NATS KV bucket (Bucket), one key per
// crisis and decision kind. Each value carries its expiry, so a claim's
// lapse does not depend on the bucket's clock: an expired value reads as no
// claim, and the bucket's MaxAge only sweeps what nobody released.
package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/demarche/demarche/pkg/authn"
	"github.com/demarche/demarche/pkg/errs"
	"github.com/demarche/demarche/pkg/natsx"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Bucket holds the claims (natsauth.ClaimsBucket names it too).
const Bucket = "DEMARCHE_CLAIMS"

// DefaultTTL is how long a claim holds unless released or renewed: long
// enough for a decision to be prepared, short enough that a person who left
// does not keep others away for a shift.
const DefaultTTL = 30 * time.Minute

// sweep is the bucket's MaxAge: values older than any TTL in use are
// removed by the server (an expired value already reads as no claim).
const sweep = 24 * time.Hour

// Resources is the claims bucket, for the provisioning identity.
func Resources() natsx.Resources {
	return natsx.Resources{Buckets: []jetstream.KeyValueConfig{{
		Bucket: Bucket, Description: "Démarche: who claimed a pending decision (advisory, lapses)", History: 1,
		TTL: sweep, Storage: jetstream.FileStorage,
	}}}
}

// Claim is one person's claim on one pending decision of one crisis.
type Claim struct {
	Crisis string `json:"crisis"`
	Kind   string `json:"kind"`
	// Holder is the claimant's subject; Name is for people to read.
	Holder  string    `json:"holder"`
	Name    string    `json:"name"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
}

// Store reads and writes claims.
type Store struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

// Open binds to the bucket (creating it only where nothing provisioned it).
// ttl <= 0 is DefaultTTL.
func Open(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (*Store, error) {
	kv, err := natsx.KeyValue(ctx, js, Resources().Buckets[0])
	if err != nil {
		return nil, fmt.Errorf("claims %w", err)
	}
	return NewStore(kv, ttl, time.Now), nil
}

// NewStore is a store over kv with its own clock (tests).
func NewStore(kv jetstream.KeyValue, ttl time.Duration, now func() time.Time) *Store {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{kv: kv, ttl: ttl, now: now}
}

// TTL is how long a claim holds.
func (s *Store) TTL() time.Duration { return s.ttl }

// keyPart is what a crisis id or a kind may be to make a key (KV keys allow
// no spaces or wildcards; crisis ids and kinds never have them).
var keyPart = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,120}$`)

func key(crisis, kind string) (string, error) {
	if !keyPart.MatchString(crisis) {
		return "", fmt.Errorf("%w: crisis: %q is not a crisis id (letters, digits, - and _)", errs.ErrInvalid, crisis)
	}
	if !keyPart.MatchString(kind) {
		return "", fmt.Errorf("%w: kind: %q is not a decision kind (letters, digits and _)", errs.ErrInvalid, kind)
	}
	return crisis + "." + kind, nil
}

// Pending is the pending decision of kind on st (nil: none waits).
func Pending(st *demarchev1.CrisisState, kind string) *demarchev1.PendingDecision {
	for _, p := range st.GetPendingDecisions() {
		if p.GetKind() == kind {
			return p
		}
	}
	return nil
}

// Check is the rule of a claim, apart from other people's claims: the
// decision must be waiting on this crisis, and the person must hold the
// role it waits for.
func Check(st *demarchev1.CrisisState, kind string, p *authn.Principal) error {
	pd := Pending(st, kind)
	if pd == nil {
		return fmt.Errorf("%w: kind: no %s decision is waiting on crisis %s (only a pending decision can be claimed)", errs.ErrNotFound, kind, st.GetCrisis().GetId())
	}
	if !p.Has(pd.GetRole()) {
		return fmt.Errorf("%w: only a %s may claim the %s decision (%s)", errs.ErrForbidden, pd.GetRole().Slug(), kind, pd.GetWho())
	}
	return nil
}

// Get is the live claim on a crisis's decision (nil: none, or it lapsed).
func (s *Store) Get(ctx context.Context, crisis, kind string) (*Claim, error) {
	c, _, err := s.get(ctx, crisis, kind)
	return c, err
}

// get answers the live claim and the key's revision (0: no key at all).
func (s *Store) get(ctx context.Context, crisis, kind string) (*Claim, uint64, error) {
	k, err := key(crisis, kind)
	if err != nil {
		return nil, 0, err
	}
	e, err := s.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: read claim %s: %w", errs.ErrUnavailable, k, err)
	}
	var c Claim
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, e.Revision(), fmt.Errorf("%w: claim %s unreadable: %w", errs.ErrInternal, k, err)
	}
	if !s.now().Before(c.Expires) {
		return nil, e.Revision(), nil
	}
	return &c, e.Revision(), nil
}

// Claim records p's claim on the crisis's pending decision of kind, after
// Check (the caller gives the state as p may see it). Claiming again one's
// own claim renews it; a live claim of someone else is a conflict naming
// its holder.
func (s *Store) Claim(ctx context.Context, st *demarchev1.CrisisState, kind string, p *authn.Principal) (*Claim, error) {
	if err := Check(st, kind, p); err != nil {
		return nil, err
	}
	id := st.GetCrisis().GetId()
	cur, rev, err := s.get(ctx, id, kind)
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.Holder != p.Subject {
		return nil, fmt.Errorf("%w: the %s decision is claimed by %s since %s (until %s, or released)", errs.ErrConflict, kind, cur.Name, cur.At.UTC().Format(time.RFC3339), cur.Expires.UTC().Format(time.RFC3339))
	}
	now := s.now()
	c := &Claim{Crisis: id, Kind: kind, Holder: p.Subject, Name: p.Name, At: now, Expires: now.Add(s.ttl)}
	if c.Name == "" {
		c.Name = p.Subject
	}
	if cur != nil {
		c.At = cur.At // renewed: claimed since the first time
	}
	b, _ := json.Marshal(c) // strings and times: Marshal cannot fail
	k, _ := key(id, kind)   // checked by get
	// Only over what was read: two people claiming at once, one wins.
	if rev == 0 {
		_, err = s.kv.Create(ctx, k, b)
	} else {
		_, err = s.kv.Update(ctx, k, b, rev)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			return nil, fmt.Errorf("%w: the %s decision was claimed by someone else a moment ago; reload", errs.ErrConflict, kind)
		}
		return nil, fmt.Errorf("%w: record claim %s: %w", errs.ErrUnavailable, k, err)
	}
	return c, nil
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Release removes p's own claim. Someone else's live claim is not p's to
// release (it lapses by itself); no claim is nothing to release.
func (s *Store) Release(ctx context.Context, crisis, kind string, p *authn.Principal) error {
	cur, rev, err := s.get(ctx, crisis, kind)
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("%w: no live claim on the %s decision of crisis %s", errs.ErrNotFound, kind, crisis)
	}
	if cur.Holder != p.Subject {
		return fmt.Errorf("%w: the %s decision is claimed by %s: only they may release it (it lapses at %s)", errs.ErrForbidden, kind, cur.Name, cur.Expires.UTC().Format(time.RFC3339))
	}
	k, _ := key(crisis, kind) // checked by get
	if err := s.kv.Delete(ctx, k, jetstream.LastRevision(rev)); err != nil {
		if isWrongSequence(err) {
			return fmt.Errorf("%w: the claim changed a moment ago; reload", errs.ErrConflict)
		}
		return fmt.Errorf("%w: release claim %s: %w", errs.ErrUnavailable, k, err)
	}
	return nil
}

// OfCrisis is the live claims on a crisis's pending decisions, by kind.
func (s *Store) OfCrisis(ctx context.Context, st *demarchev1.CrisisState) (map[string]*Claim, error) {
	out := map[string]*Claim{}
	for _, p := range st.GetPendingDecisions() {
		c, err := s.Get(ctx, st.GetCrisis().GetId(), p.GetKind())
		if err != nil {
			return nil, err
		}
		if c != nil {
			out[p.GetKind()] = c
		}
	}
	return out, nil
}
