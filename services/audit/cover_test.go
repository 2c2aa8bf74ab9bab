package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// TestVerifyRequiresSignedAnchorsWithinTheInterval: FetchChain brings the
// chain's anchor along (it was dropped, and verify always said "not anchored
// yet"); with CoverWithin, records older than the interval that no signed
// anchor covers fail, naming the chain and the records; once anchored they
// verify; an anchor whose signature does not verify, or that is unsigned,
// covers nothing.
func TestVerifyRequiresSignedAnchorsWithinTheInterval(t *testing.T) {
	e := newEnv(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), SigningKey: key, AnchorEvery: -1, ConsumerWatchEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx := context.Background()
	for n := 1; n <= 3; n++ {
		e.publish(crisisA, n)
	}
	waitChain(t, svc.Store, ChainOf(crisisA), 3)
	chain, err := FetchChain(ctx, e.nc, crisisA, "auditor")
	if err != nil {
		t.Fatal(err)
	}
	if chain.GetAnchor() != nil {
		t.Fatalf("anchor before any anchoring: %v", chain.GetAnchor())
	}
	later := time.Now().Add(time.Hour) // every record is an hour old by then
	opts := VerifyOptions{Head: chain.GetHead(), TrustedKey: pub, CoverWithin: time.Minute, Now: later}
	_, err = Verify(ChainOf(crisisA), chain.GetRecords(), opts)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Field != "anchor" || ve.Record != 1 || !strings.Contains(err.Error(), fmt.Sprintf("records 1 to %d not covered (no anchor)", len(chain.GetRecords()))) ||
		!strings.Contains(err.Error(), "chain crisis."+crisisA) {
		t.Fatalf("unanchored chain an hour later: %v", err)
	}
	// Young records need no anchor yet.
	if _, err := Verify(ChainOf(crisisA), chain.GetRecords(), VerifyOptions{Head: chain.GetHead(), TrustedKey: pub, CoverWithin: time.Minute}); err != nil {
		t.Fatalf("young records: %v", err)
	}

	if _, err := svc.Store.Anchor(ctx); err != nil {
		t.Fatal(err)
	}
	chain, err = FetchChain(ctx, e.nc, crisisA, "auditor")
	if err != nil {
		t.Fatal(err)
	}
	anchored := int(chain.GetAnchor().GetSequence())
	if anchored < 3 || anchored >= len(chain.GetRecords()) || len(chain.GetAnchor().GetSignature()) == 0 {
		t.Fatalf("FetchChain dropped the anchor, or it is unsigned: %v", chain.GetAnchor())
	}
	// Up to the anchor, every record is covered, however old.
	opts = VerifyOptions{Anchor: chain.GetAnchor(), TrustedKey: pub, CoverWithin: time.Minute, Now: later}
	if res, err := Verify(ChainOf(crisisA), chain.GetRecords()[:anchored], opts); err != nil || res.Anchored != uint64(anchored) {
		t.Fatalf("anchored chain: %v %v", res, err)
	}
	// The read recorded after the anchor is not, once old.
	if _, err := Verify(ChainOf(crisisA), chain.GetRecords(), opts); !errors.As(err, &ve) || ve.Record != anchored+1 {
		t.Fatalf("a record after the anchor, an hour later: %v", err)
	}
	chain.Records = chain.GetRecords()[:anchored]

	// An anchor whose signature does not verify.
	forged := proto.Clone(chain.GetAnchor()).(*demarchev1.ChainHead)
	forged.At = nil
	opts.Anchor = forged
	if _, err := Verify(ChainOf(crisisA), chain.GetRecords(), opts); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("anchor with a bad signature: %v", err)
	}
	// An unsigned anchor covers nothing, even without a trusted key.
	unsigned := proto.Clone(chain.GetAnchor()).(*demarchev1.ChainHead)
	unsigned.Signature, unsigned.PublicKey = nil, nil
	_, err = Verify(ChainOf(crisisA), chain.GetRecords(), VerifyOptions{Anchor: unsigned, CoverWithin: time.Minute, Now: later})
	if !errors.As(err, &ve) || ve.Field != "anchor" || !strings.Contains(err.Error(), "unsigned anchor") {
		t.Fatalf("unsigned anchor: %v", err)
	}
}

// TestEmptiedAnchoredChainIsTruncation: a chain that was anchored and holds
// nothing now (its stream removed and made again) is served empty with its
// anchor, and fails as truncated, not as "no such chain".
func TestEmptiedAnchoredChainIsTruncation(t *testing.T) {
	e := newEnv(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), SigningKey: key, AnchorEvery: -1, ConsumerWatchEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx := context.Background()
	e.publish(crisisA, 1)
	e.publish(crisisA, 2)
	waitChain(t, svc.Store, ChainOf(crisisA), 2)
	if _, err := svc.Store.Anchor(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteStream(ctx, StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(ctx, Resources().Streams[0]); err != nil {
		t.Fatal(err)
	}
	chain, err := FetchChain(ctx, e.nc, crisisA, "auditor")
	if err != nil {
		t.Fatalf("an emptied anchored chain: %v", err)
	}
	_, err = Verify(ChainOf(crisisA), chain.GetRecords(), VerifyOptions{Head: chain.GetHead(), Anchor: chain.GetAnchor(), TrustedKey: pub})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Field != "anchor" || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("emptied chain: %v", err)
	}
}

// TestEnsureSigningKey: made once (seed readable by its owner alone), kept,
// its public key beside it.
func TestEnsureSigningKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), DevKeyFile)
	k1, err := EnsureSigningKey(file)
	if err != nil || k1 == nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi, err)
	}
	k2, err := EnsureSigningKey(file)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("the key was not kept: %v", err)
	}
	b, err := os.ReadFile(PublicKeyFileOf(file))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(string(b))
	if err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("public key file: %v", err)
	}
	if filepath.Base(PublicKeyFileOf(file)) != DevPublicKeyFile {
		t.Fatalf("public key file %s", PublicKeyFileOf(file))
	}
}

// TestAnchoringFindsTruncationAndRemovedAnchors: the anchoring round itself
// notices a chain shorter than its anchor, and anchors that went missing:
// the chain is isolated with an alarm and never anchored again (anchoring
// the head left behind would make the truncation verify).
func TestAnchoringFindsTruncationAndRemovedAnchors(t *testing.T) {
	e := newEnv(t)
	_, key, _ := ed25519.GenerateKey(nil)
	svc, err := Start(context.Background(), Config{NATSURL: e.srv.URL(), SigningKey: key, AnchorEvery: -1, ConsumerWatchEvery: -1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	ctx := context.Background()
	for n := 1; n <= 4; n++ {
		e.publish(crisisA, n)
		e.publish(crisisB, n)
	}
	recsA := waitChain(t, svc.Store, ChainOf(crisisA), 4)
	waitChain(t, svc.Store, ChainOf(crisisB), 4)
	if _, err := svc.Store.Anchor(ctx); err != nil {
		t.Fatal(err)
	}
	// Chain A loses its last two records (the stream made again with the rest).
	all, err := svc.Store.Records(ctx, ChainOf(crisisB), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	global, err := svc.Store.Records(ctx, GlobalChain, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteStream(ctx, StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(ctx, Resources().Streams[0]); err != nil {
		t.Fatal(err)
	}
	for chain, recs := range map[string][]*demarchev1.AuditRecord{ChainOf(crisisA): recsA[:2], ChainOf(crisisB): all, GlobalChain: global} {
		for _, r := range recs {
			b, _ := Encode(r)
			if _, err := e.js.Publish(ctx, SubjectOf(chain), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := svc.Store.Anchor(ctx); err != nil {
		t.Fatal(err)
	}
	iso := svc.Store.Isolated()
	if !strings.Contains(iso[ChainOf(crisisA)], "holds 2 records but was anchored at record 4") {
		t.Fatalf("truncated chain not isolated: %v", iso)
	}
	if iso[ChainOf(crisisB)] != "" {
		t.Fatalf("an intact chain was isolated: %v", iso)
	}
	// Chain B's anchors removed (the anchor stream made again, empty).
	if err := e.js.DeleteStream(ctx, AnchorStream); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(ctx, Resources().Streams[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Store.Anchor(ctx); err != nil {
		t.Fatal(err)
	}
	if iso := svc.Store.Isolated(); !strings.Contains(iso[ChainOf(crisisB)], "anchors of chain crisis."+crisisB+" were removed") {
		t.Fatalf("removed anchors not noticed: %v", iso)
	}
	if last, _ := svc.Store.LastAnchor(ctx, ChainOf(crisisA)); last != nil {
		t.Fatalf("the truncated chain was anchored again: %v", last)
	}
}
