package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

// TestSigningKeyRotationOverlap rotates the audit signing key of a running
// audit service (restarted with a new key, on the same chains): records and
// anchors written under the old key stay, new ones are signed by the new
// key, and `audit verify` (Verify) accepts the chain when given the new key
// as trusted and the old public key among the older keys, and refuses it
// without the old key or with a key that never signed (naming the record).
func TestSigningKeyRotationOverlap(t *testing.T) {
	ctx := context.Background()
	key := func() (ed25519.PublicKey, ed25519.PrivateKey) {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		return pub, priv
	}
	oldPub, oldKey := key()
	newPub, newKey := key()
	otherPub, _ := key()
	e := newEnv(t)
	const crisisID = "GN-20261127-R0TAT"
	chain := ChainOf(crisisID)

	s := e.start(oldKey)
	for n := 1; n <= 4; n++ {
		e.publish(crisisID, n)
	}
	before := waitChain(t, s.Store, chain, 4)
	// The anchor published under the old key (what the anchor stream holds).
	anchor := HeadOf(before[len(before)-1])
	if err := SignHead(anchor, oldKey); err != nil {
		t.Fatal(err)
	}
	s.Stop()

	s = e.start(newKey) // the rotation
	defer s.Stop()
	for n := 5; n <= 8; n++ {
		e.publish(crisisID, n)
	}
	records := waitChain(t, s.Store, chain, 8)
	head, err := s.Store.Head(ctx, chain)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(newPub, records[7].GetHash(), records[7].GetSignature()) || !ed25519.Verify(oldPub, records[0].GetHash(), records[0].GetSignature()) {
		t.Fatal("records after the rotation are not signed by the new key, or those before by the old one")
	}

	opts := VerifyOptions{Head: head, TrustedKey: newPub, Anchor: anchor, OlderKeys: []ed25519.PublicKey{oldPub}}
	if res, err := Verify(chain, records, opts); err != nil || res.Records != 8 {
		t.Fatalf("the rotated chain with the old key listed: %v", err)
	}
	// Without the old key listed: the old anchor and the old records are refused.
	opts.OlderKeys = nil
	if _, err := Verify(chain, records, opts); !errors.Is(err, ErrBroken) {
		t.Fatalf("the rotated chain without the old key: %v, want a break", err)
	}
	opts.Anchor = nil
	var ve *VerifyError
	if _, err := Verify(chain, records, opts); !errors.As(err, &ve) || ve.Record != 1 || ve.Field != "signature" {
		t.Fatalf("old records without the old key: %v, want record 1's signature", err)
	}
	// A key that never signed is no substitute.
	opts.OlderKeys = []ed25519.PublicKey{otherPub}
	if _, err := Verify(chain, records, opts); !errors.As(err, &ve) || ve.Record != 1 || !strings.Contains(ve.Expected, KeyID(otherPub)) {
		t.Fatalf("old records with another key listed: %v", err)
	}
	// Without a trusted key (the head's own), the old key listed suffices too.
	if _, err := Verify(chain, records, VerifyOptions{Head: head, OlderKeys: []ed25519.PublicKey{oldPub}}); err != nil {
		t.Fatalf("untrusted verify with the old key listed: %v", err)
	}
}
