package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// testIssuer is an OpenID Connect issuer started in the test, with its own
// keys, discovery document and JWKS.
type testIssuer struct {
	srv  *oidctest.Server
	url  string
	keys map[string]*ecdsa.PrivateKey
}

func newTestIssuer(t *testing.T) *testIssuer {
	ti := &testIssuer{srv: &oidctest.Server{Algorithms: []string{oidc.ES256}}, keys: map[string]*ecdsa.PrivateKey{}}
	ti.addKey(t, "k1")
	hs := httptest.NewServer(ti.srv)
	t.Cleanup(hs.Close)
	ti.srv.SetIssuer(hs.URL)
	ti.url = hs.URL
	return ti
}

func (ti *testIssuer) addKey(t *testing.T, kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ti.keys[kid] = k
	ti.srv.PublicKeys = append(ti.srv.PublicKeys, oidctest.PublicKey{PublicKey: k.Public(), KeyID: kid, Algorithm: oidc.ES256})
}

func (ti *testIssuer) token(kid, aud string, exp time.Time, extra string) string {
	claims := fmt.Sprintf(`{"iss": %q, "aud": %q, "sub": "alice", "exp": %d, "iat": %d%s}`, ti.url, aud, exp.Unix(), time.Now().Unix(), extra)
	key := ti.keys[kid]
	return oidctest.SignIDToken(key, kid, oidc.ES256, claims)
}

func TestOIDCVerification(t *testing.T) {
	ctx := context.Background()
	ti := newTestIssuer(t)
	v, err := NewOIDC(ctx, ti.url, Audience)
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	roles := `, "roles": ["funding-officer", "some-other-app-role"], "clearance": "restricted", "name": "Alice"`

	p, err := v.Verify(ctx, ti.token("k1", Audience, hour, roles))
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	if p.Subject != "alice" || p.Name != "Alice" || !p.Has(demarchev1.Role_ROLE_FUNDING_OFFICER) || len(p.Roles) != 1 ||
		p.Clearance != demarchev1.Confidentiality_CONFIDENTIALITY_RESTRICTED {
		t.Fatalf("principal: %+v", p)
	}

	// A key the issuer did not publish: a stranger's signature.
	stranger := &testIssuer{keys: map[string]*ecdsa.PrivateKey{}, url: ti.url, srv: &oidctest.Server{}}
	stranger.addKey(t, "k1")

	refused := []struct {
		name, token, says string
	}{
		{"expired", ti.token("k1", Audience, time.Now().Add(-time.Minute), ""), "expired"},
		{"wrong audience", ti.token("k1", "someone-else", hour, ""), "audience"},
		{"unknown key", stranger.token("k1", Audience, hour, ""), "signature"},
		{"garbage", "not.a.token", "malformed"},
		{"none", "", "no credential"},
		{"bad clearance", ti.token("k1", Audience, hour, `, "clearance": "top-secret"`), "clearance"},
		{"partner without organisation", ti.token("k1", Audience, hour, `, "roles": ["partner"]`), "organisation"},
	}
	for _, c := range refused {
		_, err := v.Verify(ctx, c.token)
		if !errors.Is(err, errs.ErrUnauthenticated) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want unauthenticated saying %q", c.name, err, c.says)
		}
		if c.token != "" && err != nil && strings.Contains(err.Error(), c.token) {
			t.Errorf("%s: the error echoes the token", c.name)
		}
	}

	// Rotation: the issuer publishes a new key and signs with it; the
	// verifier fetches the JWKS again and accepts it.
	ti.addKey(t, "k2")
	if _, err := v.Verify(ctx, ti.token("k2", Audience, hour, "")); err != nil {
		t.Fatalf("token signed with a rotated key refused: %v", err)
	}
}

func TestDevIssuerTokensVerifyAndPersist(t *testing.T) {
	dir := t.TempDir()
	iss, err := LoadOrCreateIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := WriteDevTokens(dir, iss)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(DevIdentities) {
		t.Fatalf("%d token files for %d identities", len(files), len(DevIdentities))
	}
	again, err := LoadOrCreateIssuer(dir) // a restart keeps the key
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Mint(Claims{Subject: "ecowas", Roles: []string{"partner"}, Partner: "ECOWAS"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := again.Verifier().Verify(context.Background(), tok)
	if err != nil || p.Partner != "ECOWAS" || !p.Has(demarchev1.Role_ROLE_PARTNER) || p.Clearance != demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC {
		t.Fatalf("dev token after restart: %+v %v", p, err)
	}
	other, _ := LoadOrCreateIssuer(t.TempDir())
	if _, err := other.Verifier().Verify(context.Background(), tok); !errors.Is(err, errs.ErrUnauthenticated) {
		t.Fatalf("another data folder's issuer accepted the token: %v", err)
	}
}
