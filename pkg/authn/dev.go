package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DevIssuerName is the issuer of the tokens `demarche dev` mints.
const DevIssuerName = "demarche-dev"

// Issuer mints tokens with its own key: the embedded stack's stand-in for an
// organisation's identity provider. Its verifier is an ordinary OIDC verifier
// with the issuer's public key.
type Issuer struct {
	key      *ecdsa.PrivateKey
	kid      string
	name     string
	audience string
}

// LoadOrCreateIssuer keeps the dev issuer's key in dir (created 0700, the key
// 0600), so tokens stay valid across restarts of the same data folder.
func LoadOrCreateIssuer(dir string) (*Issuer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	path := filepath.Join(dir, "issuer.key")
	var key *ecdsa.PrivateKey
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("dev issuer: %s is not a PEM key", path)
		}
		if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("dev issuer: %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("dev issuer: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("dev issuer: %w", err)
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("dev issuer: %w", err)
		}
	default:
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	sum := sha256.Sum256(pub)
	return &Issuer{key: key, kid: hex.EncodeToString(sum[:8]), name: DevIssuerName, audience: Audience}, nil
}

// Verifier checks the tokens this issuer mints.
func (i *Issuer) Verifier() *Verifier {
	return NewStatic(i.name, i.audience, []string{string(jose.ES256)}, &i.key.PublicKey)
}

// Mint signs a token for claims, valid for ttl.
func (i *Issuer) Mint(c Claims, ttl time.Duration) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", i.kid))
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	now := time.Now()
	std := jwt.Claims{Issuer: i.name, Audience: jwt.Audience{i.audience}, IssuedAt: jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(ttl))}
	tok, err := jwt.Signed(signer).Claims(std).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return tok, nil
}

// Identity is a demo identity of `demarche dev`.
type Identity struct {
	Claims
	// What it is for, shown on the dev sign-in page and in the banner.
	About string `json:"about"`
}

// DevIdentities are the demo identities `demarche dev` creates: enough to run
// a crisis from warning to closure with four-eyes, and to see confidentiality
// hold (the analyst and the partner are not cleared for restricted crises).
var DevIdentities = []Identity{
	{Claims{Subject: "duty", Name: "Duty officer", Clearance: "confidential",
		Roles: []string{"duty-officer", "desk-officer", "head-of-department", "mediation-support", "drill-coordinator"}},
		"operations centre: opens crises, triages, decides good offices, fact-finding, envoys; steers drills"},
	{Claims{Subject: "approver", Name: "Funding officer", Clearance: "restricted", Roles: []string{"funding-officer"}},
		"approves or rejects funding requests (never their own: four-eyes)"},
	{Claims{Subject: "roster", Name: "Roster coordinator", Clearance: "public", Roles: []string{"roster-coordinator", "fund-manager"}},
		"keeps the roster and the funds"},
	{Claims{Subject: "analyst", Name: "Early-warning analyst", Clearance: "public", Roles: []string{"analyst"}},
		"sends and reads warnings and scores; not cleared for restricted crises"},
	{Claims{Subject: "auditor", Name: "Auditor", Clearance: "confidential", Roles: []string{"auditor"}},
		"reads everything, runs the audit verbs, writes nothing"},
	{Claims{Subject: "ecowas", Name: "ECOWAS liaison", Clearance: "public", Roles: []string{"partner"}, Partner: "ECOWAS"},
		"partner: sees what is shared with ECOWAS, acknowledges its role"},
	{Claims{Subject: "unowa", Name: "UNOWA field officer", Clearance: "restricted", Roles: []string{"field-officer"}, Presence: "UNOWA"},
		"field presence: sees the crises the UN Office for West Africa leads, files their field reports"},
	{Claims{Subject: "admin", Name: "Administrator", Clearance: "confidential", Roles: []string{"admin"}},
		"runs the platform; takes no crisis decision"},
}

// DevTokenTTL is how long a dev token lasts.
const DevTokenTTL = 90 * 24 * time.Hour

// WriteDevTokens mints a token for every demo identity into dir/NAME.token
// (0600) and the list into dir/identities.json; it returns the token files.
func WriteDevTokens(dir string, i *Issuer) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range DevIdentities {
		tok, err := i.Mint(id.Claims, DevTokenTTL)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, id.Subject+".token")
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("dev token %s: %w", id.Subject, err)
		}
		out[id.Subject] = path
	}
	b, err := json.MarshalIndent(DevIdentities, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "identities.json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("dev identities: %w", err)
	}
	return out, nil
}
