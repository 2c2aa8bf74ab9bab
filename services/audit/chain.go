package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/demarche/demarche/pkg/eventbus"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Chain names.
const (
	GlobalChain       = "global"
	crisisChainPrefix = "crisis."
	// ReadEventType is the event_type of audit-read records.
	ReadEventType = "audit-read"
)

// ChainOf is the chain of a crisis; the global chain for "".
func ChainOf(crisisID string) string {
	if crisisID == "" {
		return GlobalChain
	}
	return crisisChainPrefix + crisisID
}

// ErrBroken is matched (errors.Is) by every verification failure.
var ErrBroken = errors.New("audit chain broken")

var deterministic = proto.MarshalOptions{Deterministic: true}

// genesis is the prev_hash of a chain's first record.
var genesis = make([]byte, sha256.Size)

// Canonical is the encoding a record's hash covers: the record without its hash and signature.
func Canonical(r *demarchev1.AuditRecord) ([]byte, error) {
	c := proto.Clone(r).(*demarchev1.AuditRecord)
	c.Hash, c.Signature = nil, nil
	return deterministic.Marshal(c)
}

// Hash is SHA-256 of Canonical(r).
func Hash(r *demarchev1.AuditRecord) ([]byte, error) {
	b, err := Canonical(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// Encode is how a record is stored: its canonical encoding with the hash set.
func Encode(r *demarchev1.AuditRecord) ([]byte, error) { return deterministic.Marshal(r) }

// link sets sequence, prev_hash and hash of r so that it follows prev (nil: first).
func link(r *demarchev1.AuditRecord, prev *demarchev1.AuditRecord) error {
	r.Sequence, r.PrevHash = 1, genesis
	if prev != nil {
		r.Sequence, r.PrevHash = prev.GetSequence()+1, prev.GetHash()
	}
	h, err := Hash(r)
	r.Hash = h
	return err
}

// digestHeaders are the CloudEvents attributes an event digest covers, in order.
var digestHeaders = []string{eventbus.HeaderSpecVersion, eventbus.HeaderID, eventbus.HeaderSource, eventbus.HeaderType,
	eventbus.HeaderTime, eventbus.HeaderSubject, eventbus.HeaderDataSchema, eventbus.HeaderContentType}

// EventDigest is SHA-256 over an event's attributes and data (see the package doc).
func EventDigest(ev eventbus.Event) ([]byte, error) {
	msg, err := eventbus.Encode("digest", ev)
	if err != nil {
		return nil, err
	}
	data, err := deterministic.Marshal(ev.Data)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, name := range digestHeaders {
		fmt.Fprintf(h, "%s:%s\n", name, msg.Header.Get(name))
	}
	h.Write([]byte("\n"))
	h.Write(data)
	return h.Sum(nil), nil
}

// PrincipalOf is who acted in an event: the decision's or control's principal,
// else the event's source.
func PrincipalOf(ev eventbus.Event) string {
	var p string
	switch d := ev.Data.(type) {
	case *demarchev1.DecisionRecorded:
		p = d.GetDecision().GetPrincipal()
	case *demarchev1.SeverityChanged:
		p = d.GetPrincipal()
	case *demarchev1.StageSkipped:
		p = d.GetPrincipal()
	case *demarchev1.StageReopened:
		p = d.GetPrincipal()
	case *demarchev1.SharingChanged:
		p = d.GetPrincipal()
	case *demarchev1.CommentAdded:
		p = d.GetComment().GetPrincipal()
	case *demarchev1.PartnerRoleAcknowledged:
		p = d.GetAck().GetPrincipal()
	case *demarchev1.CrisisOpened:
		p = d.GetCrisis().GetOpenedBy()
	case *demarchev1.CrisisAlteredOutside: // the Temporal client identity, when known
		if id := d.GetOperation().GetIdentity(); id != "" {
			p = "temporal:" + id
		}
	}
	if p == "" {
		p = ev.Source
	}
	return p
}

// HeadOf is the (unsigned) head of a chain whose last record is last.
func HeadOf(last *demarchev1.AuditRecord) *demarchev1.ChainHead {
	return &demarchev1.ChainHead{Chain: last.GetChain(), Sequence: last.GetSequence(), Hash: last.GetHash(), At: last.GetRecordedAt()}
}

// headBytes is what a head's signature covers.
func headBytes(h *demarchev1.ChainHead) ([]byte, error) {
	c := proto.Clone(h).(*demarchev1.ChainHead)
	c.Signature = nil
	return deterministic.Marshal(c)
}

// SignHead signs a head with key (nothing to do when key is nil).
func SignHead(h *demarchev1.ChainHead, key ed25519.PrivateKey) error {
	if key == nil {
		return nil
	}
	h.PublicKey = key.Public().(ed25519.PublicKey)
	b, err := headBytes(h)
	if err != nil {
		return err
	}
	h.Signature = ed25519.Sign(key, b)
	return nil
}

// VerifyHeadSignature checks a signed head; trusted, when given, must hold
// its key (the current key, and the older ones a rotation left: see
// VerifyOptions.OlderKeys).
func VerifyHeadSignature(h *demarchev1.ChainHead, trusted ...ed25519.PublicKey) error {
	trusted = slices.DeleteFunc(slices.Clone(trusted), func(k ed25519.PublicKey) bool { return k == nil })
	if len(h.GetSignature()) == 0 {
		if len(trusted) > 0 {
			return fmt.Errorf("%w: chain %s: head is not signed, but a trusted key was given", ErrBroken, h.GetChain())
		}
		return nil
	}
	if len(h.GetPublicKey()) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: chain %s: head signature without a valid public key", ErrBroken, h.GetChain())
	}
	if len(trusted) > 0 && !slices.ContainsFunc(trusted, func(k ed25519.PublicKey) bool { return bytes.Equal(k, h.GetPublicKey()) }) {
		ids := make([]string, len(trusted))
		for i, k := range trusted {
			ids[i] = KeyID(k)
		}
		return fmt.Errorf("%w: chain %s: head signed by key %s, not by the trusted key(s) %s", ErrBroken, h.GetChain(), KeyID(h.GetPublicKey()), strings.Join(ids, ", "))
	}
	b, err := headBytes(h)
	if err != nil {
		return err
	}
	if !ed25519.Verify(h.GetPublicKey(), b, h.GetSignature()) {
		return fmt.Errorf("%w: chain %s: head signature does not verify (head at record %d)", ErrBroken, h.GetChain(), h.GetSequence())
	}
	return nil
}

// KeyID is a short fingerprint of a public key: the first 8 bytes of its SHA-256, hex.
func KeyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// VerifyError is the first place where a chain breaks.
type VerifyError struct {
	Chain string
	// Record is the 1-based position in the chain as given.
	Record   int
	Field    string // sequence, prev_hash, hash, chain, encoding, head
	Expected string
	Found    string
	// Meaning: what the break suggests happened.
	Meaning string
}

func (e *VerifyError) Error() string {
	s := fmt.Sprintf("chain %s broken at record %d: %s: expected %s, found %s", e.Chain, e.Record, e.Field, e.Expected, e.Found)
	if e.Meaning != "" {
		s += " (" + e.Meaning + ")"
	}
	return s
}

// Unwrap lets callers match ErrBroken.
func (e *VerifyError) Unwrap() error { return ErrBroken }

// VerifyOptions adds what a chain is checked against beyond itself.
type VerifyOptions struct {
	// Head, when given, must match the record at its sequence, and its
	// signature (if any) must verify; a chain shorter than its head was truncated.
	Head *demarchev1.ChainHead
	// TrustedKey, when given, must have signed the head (and the anchor).
	TrustedKey ed25519.PublicKey
	// OlderKeys are the public keys that signed before a rotation of the
	// signing key: a record, head or anchor they signed is accepted beside
	// TrustedKey's (or, without TrustedKey, beside the head's and anchor's
	// own keys). A record signed by no key of the list is a forgery.
	OlderKeys []ed25519.PublicKey
	// Anchor, when given, is the chain's last anchored head (from the anchor
	// stream or an exported anchor file): the chain must still hold that
	// record at that sequence, or its tail was truncated or rewritten.
	Anchor *demarchev1.ChainHead
	// CoverWithin, when > 0, is how long a record may wait for its anchor:
	// the anchoring interval plus a grace. Every record recorded more than
	// CoverWithin before Now must be covered by Anchor (at or below its
	// sequence), and Anchor must be signed: a chain whose anchors stopped,
	// were removed, or were never made fails, naming the uncovered records.
	CoverWithin time.Duration
	// Now is when the chain is checked (default time.Now()).
	Now time.Time
}

// Result summarises a chain that verified.
type Result struct {
	Chain      string
	Records    int
	HeadHash   []byte
	HeadSigned bool
	SignerKey  string
	// Anchored is the sequence of the anchor the chain was checked against (0: none).
	Anchored uint64
	// CoverWithin is how long records could wait for an anchor (0: not required).
	CoverWithin time.Duration
}

func short(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	return hex.EncodeToString(b)
}

// Verify recomputes a chain (records in their stored order) and returns the
// first break as a *VerifyError. chain, when not empty, is the chain every
// record must belong to.
func Verify(chain string, records []*demarchev1.AuditRecord, opts VerifyOptions) (*Result, error) {
	if chain == "" && len(records) > 0 {
		chain = records[0].GetChain()
	}
	// Records are signed with the key that signs the heads: the trusted key,
	// else the head's (or the anchor's). With a trusted key every record must
	// be signed; without, every record from the first signed one on (records
	// from before a key was configured stay unsigned).
	strict := opts.TrustedKey != nil
	trusted := append([]ed25519.PublicKey{opts.TrustedKey}, opts.OlderKeys...) // heads and anchors
	if !strict {
		trusted = nil // any head key, as before; records below are checked against it
	}
	if opts.Head != nil && strict {
		// A head signed by another key says more than its records would.
		if err := VerifyHeadSignature(opts.Head, trusted...); err != nil {
			return nil, err
		}
	}
	var keys []ed25519.PublicKey // the keys a record may be signed by
	if strict {
		keys = append(keys, opts.TrustedKey)
	}
	for _, h := range []*demarchev1.ChainHead{opts.Head, opts.Anchor} {
		if !strict && len(h.GetPublicKey()) == ed25519.PublicKeySize {
			keys = append(keys, ed25519.PublicKey(h.GetPublicKey()))
		}
	}
	if len(keys) > 0 {
		keys = append(keys, opts.OlderKeys...)
	}
	keyIDs := make([]string, len(keys))
	for i, k := range keys {
		keyIDs[i] = KeyID(k)
	}
	signedByOne := func(r *demarchev1.AuditRecord) bool {
		return slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return ed25519.Verify(k, r.GetHash(), r.GetSignature()) })
	}
	signed := false
	prev := genesis
	for i, r := range records {
		n := uint64(i + 1)
		fail := func(field, expected, found, meaning string) error {
			return &VerifyError{Chain: chain, Record: i + 1, Field: field, Expected: expected, Found: found, Meaning: meaning}
		}
		if r.GetSequence() == 0 && len(r.GetHash()) == 0 && strings.HasPrefix(r.GetDetail(), undecodable) {
			return nil, fail("encoding", "an AuditRecord", r.GetDetail(), "something other than the audit service wrote here, or the record was damaged")
		}
		if r.GetChain() != chain {
			return nil, fail("chain", chain, r.GetChain(), "a record of another chain was inserted")
		}
		if r.GetSequence() != n {
			meaning := "a record was inserted before it, or records were reordered"
			if r.GetSequence() > n {
				meaning = "a record before it was deleted, or a later record was moved or copied here"
			}
			return nil, fail("sequence", fmt.Sprint(n), fmt.Sprint(r.GetSequence()), meaning)
		}
		if !bytes.Equal(r.GetPrevHash(), prev) {
			return nil, fail("prev_hash", short(prev), short(r.GetPrevHash()), "it does not link to the record before it: a record was replaced, or this one modified")
		}
		h, err := Hash(r)
		if err != nil {
			return nil, fail("encoding", "a record", err.Error(), "")
		}
		if !bytes.Equal(h, r.GetHash()) {
			return nil, fail("hash", short(h), short(r.GetHash()), "the record was modified")
		}
		if len(r.GetSignature()) > 0 {
			signed = true
		}
		if len(keys) > 0 && (signed || strict) {
			want := "a signature by key " + strings.Join(keyIDs, " or ")
			if len(r.GetSignature()) == 0 {
				return nil, fail("signature", want, "none", "the record was not written by the audit service (a forged record)")
			}
			if !signedByOne(r) {
				return nil, fail("signature", want, "a signature that does not verify", "the record was not written by the audit service (a forged record), or signed with a key not listed (an older key of a rotation: --old-public-key)")
			}
		}
		prev = r.GetHash()
	}
	res := &Result{Chain: chain, Records: len(records), HeadHash: prev}
	if head := opts.Head; head != nil {
		if err := holds(chain, records, head, trusted, "head", "records at the end of the chain were deleted", "the chain was rewritten up to its head"); err != nil {
			return nil, err
		}
		res.HeadSigned = len(head.GetSignature()) > 0
		if res.HeadSigned {
			res.SignerKey = KeyID(head.GetPublicKey())
		}
	} else if opts.TrustedKey != nil && opts.Anchor == nil {
		return nil, fmt.Errorf("%w: chain %s: a trusted key was given but there is no head to check", ErrBroken, chain)
	}
	if a := opts.Anchor; a != nil {
		at := a.GetAt().AsTime().UTC().Format(time.RFC3339)
		if err := holds(chain, records, a, trusted, "anchor",
			"the chain was truncated after it was anchored at "+at+": records at its end were deleted",
			"the chain was rewritten after it was anchored at "+at); err != nil {
			return nil, err
		}
		res.Anchored = a.GetSequence()
	}
	if opts.CoverWithin > 0 {
		if err := covered(chain, records, opts); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// covered checks that every record older than opts.CoverWithin is covered by
// a signed anchor (the anchor itself was checked by holds).
func covered(chain string, records []*demarchev1.AuditRecord, opts VerifyOptions) error {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	cutoff := now.Add(-opts.CoverWithin)
	var upTo uint64
	anchorSays := "no anchor"
	if a := opts.Anchor; a != nil {
		if len(a.GetSignature()) == 0 {
			anchorSays = fmt.Sprintf("an unsigned anchor at record %d (an unsigned anchor covers nothing: anyone who can publish it can make it)", a.GetSequence())
		} else {
			upTo = a.GetSequence()
			anchorSays = fmt.Sprintf("its last signed anchor at record %d, %s", upTo, a.GetAt().AsTime().UTC().Format(time.RFC3339))
		}
	}
	first, last := 0, 0
	for i, r := range records {
		if uint64(i+1) <= upTo || r.GetRecordedAt() == nil || !r.GetRecordedAt().AsTime().Before(cutoff) {
			continue
		}
		if first == 0 {
			first = i + 1
		}
		last = i + 1
	}
	if first == 0 {
		return nil
	}
	return &VerifyError{Chain: chain, Record: first, Field: "anchor",
		Expected: fmt.Sprintf("every record recorded before %s (%s ago) covered by a signed anchor", cutoff.UTC().Format(time.RFC3339), opts.CoverWithin),
		Found:    fmt.Sprintf("records %d to %d not covered (%s)", first, last, anchorSays),
		Meaning:  "the chain's anchors stopped, were removed, or the chain was truncated or rewritten where no anchor could show it"}
}

// holds checks that records still hold what a signed head (the live head or
// an anchor) says: the record at its sequence, with its hash.
func holds(chain string, records []*demarchev1.AuditRecord, head *demarchev1.ChainHead, trusted []ed25519.PublicKey, field, truncated, rewritten string) error {
	if head.GetChain() != chain {
		return &VerifyError{Chain: chain, Record: int(head.GetSequence()), Field: field, Expected: field + " of " + chain, Found: field + " of " + head.GetChain()}
	}
	if err := VerifyHeadSignature(head, trusted...); err != nil {
		return err
	}
	if head.GetSequence() > uint64(len(records)) {
		return &VerifyError{Chain: chain, Record: len(records) + 1, Field: field, Expected: fmt.Sprintf("%d records (the %s's sequence)", head.GetSequence(), field),
			Found: fmt.Sprintf("%d records", len(records)), Meaning: truncated}
	}
	if head.GetSequence() > 0 {
		at := records[head.GetSequence()-1]
		if !bytes.Equal(at.GetHash(), head.GetHash()) {
			return &VerifyError{Chain: chain, Record: int(head.GetSequence()), Field: field, Expected: short(head.GetHash()), Found: short(at.GetHash()),
				Meaning: rewritten}
		}
	}
	return nil
}

// undecodable starts the detail of the placeholder Records serves for a
// stored record that does not decode.
const undecodable = "undecodable stored record"

// DecodeRecords decodes stored records; an undecodable one breaks the chain there.
func DecodeRecords(chain string, raw [][]byte) ([]*demarchev1.AuditRecord, error) {
	out := make([]*demarchev1.AuditRecord, len(raw))
	for i, b := range raw {
		var r demarchev1.AuditRecord
		if err := proto.Unmarshal(b, &r); err != nil {
			return nil, &VerifyError{Chain: chain, Record: i + 1, Field: "encoding", Expected: "an AuditRecord", Found: err.Error(), Meaning: "the record was modified"}
		}
		out[i] = &r
	}
	return out, nil
}
