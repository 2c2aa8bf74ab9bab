// Package authn turns a credential into a principal. Identity comes only from
// a bearer JWT verified against the organisation's OpenID Connect issuer
// (discovery, JWKS with key rotation, audience, expiry), or, in `demarche
// dev`, against the dev issuer's own key. A name a caller types is never an
// identity. Tokens never appear in errors or logs.
package authn

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/demarche/demarche/pkg/errs"
	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// Audience is the default audience Démarche's tokens are issued for.
const Audience = "demarche"

// Principal is an authenticated caller.
type Principal struct {
	// Subject is the credential's stable id ("sub"): what decisions record
	// and four-eyes compares.
	Subject string
	// Name is for people to read.
	Name  string
	Roles []demarchev1.Role
	// Clearance is the most confidential level the principal may see.
	Clearance demarchev1.Confidentiality
	// Partner is the organisation a partner liaison is bound to.
	Partner string
	// Presence is the field presence a field officer is bound to (its id in
	// the presences registry, pkg/presences).
	Presence string
}

// Has reports whether the principal holds role r.
func (p *Principal) Has(r demarchev1.Role) bool { return p != nil && slices.Contains(p.Roles, r) }

// HasAny reports whether the principal holds one of roles.
func (p *Principal) HasAny(roles ...demarchev1.Role) bool {
	for _, r := range roles {
		if p.Has(r) {
			return true
		}
	}
	return false
}

// Claims are the token claims Démarche reads. Roles are slugs
// ("duty-officer"); clearance is public, restricted or confidential.
type Claims struct {
	Subject   string   `json:"sub"`
	Name      string   `json:"name,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	Clearance string   `json:"clearance,omitempty"`
	Partner   string   `json:"partner,omitempty"`
	Presence  string   `json:"presence,omitempty"`
}

// principal checks the claims and makes them a principal.
func (c Claims) principal() (*Principal, error) {
	p := &Principal{Subject: c.Subject, Name: c.Name, Partner: c.Partner, Presence: c.Presence, Clearance: demarchev1.Confidentiality_CONFIDENTIALITY_PUBLIC}
	if strings.TrimSpace(c.Subject) == "" || len(c.Subject) > 100 || strings.ContainsAny(c.Subject, " \t\r\n") {
		return nil, fmt.Errorf("%w: the token's subject is missing or not a principal name", errs.ErrUnauthenticated)
	}
	if p.Name == "" {
		p.Name = c.Subject
	}
	for _, s := range c.Roles {
		r, err := demarchev1.ParseRole(s)
		if err != nil {
			continue // roles of other applications share the claim
		}
		if !p.Has(r) {
			p.Roles = append(p.Roles, r)
		}
	}
	if c.Clearance != "" {
		cl, err := demarchev1.ParseConfidentiality(c.Clearance)
		if err != nil {
			return nil, fmt.Errorf("%w: clearance claim %q is not public, restricted or confidential", errs.ErrUnauthenticated, c.Clearance)
		}
		p.Clearance = cl
	}
	if p.Has(demarchev1.Role_ROLE_PARTNER) && p.Partner == "" {
		return nil, fmt.Errorf("%w: a partner credential must name its organisation (partner claim)", errs.ErrUnauthenticated)
	}
	if p.Has(demarchev1.Role_ROLE_FIELD_OFFICER) {
		if p.Presence == "" {
			return nil, fmt.Errorf("%w: a field officer's credential must name its field presence (presence claim, e.g. UNOWA)", errs.ErrUnauthenticated)
		}
		if err := demarchev1.CheckPresenceID(p.Presence); err != nil {
			return nil, fmt.Errorf("%w: presence claim: %v", errs.ErrUnauthenticated, err)
		}
	}
	return p, nil
}

// Verifier checks bearer tokens.
type Verifier struct {
	v *oidc.IDTokenVerifier
}

// NewOIDC verifies tokens of an OpenID Connect issuer: its discovery
// document, its JWKS (fetched again when a token names a key it has not seen,
// so rotated keys are picked up), the audience and expiry.
func NewOIDC(ctx context.Context, issuer, audience string) (*Verifier, error) {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc issuer %s: %w", issuer, err)
	}
	return &Verifier{v: p.VerifierContext(context.WithoutCancel(ctx), &oidc.Config{ClientID: audience})}, nil
}

// NewStatic verifies tokens signed by fixed keys (the dev issuer's).
func NewStatic(issuer, audience string, algs []string, keys ...crypto.PublicKey) *Verifier {
	return &Verifier{v: oidc.NewVerifier(issuer, &oidc.StaticKeySet{PublicKeys: keys}, &oidc.Config{ClientID: audience, SupportedSigningAlgs: algs})}
}

// Verify checks a raw bearer token and returns its principal. Every failure
// matches errs.ErrUnauthenticated; the token itself is never in the error.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: no credential (send Authorization: Bearer TOKEN)", errs.ErrUnauthenticated)
	}
	tok, err := v.v.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", errs.ErrUnauthenticated, reason(err))
	}
	var c Claims
	if err := tok.Claims(&c); err != nil {
		return nil, fmt.Errorf("%w: unreadable claims", errs.ErrUnauthenticated)
	}
	return c.principal()
}

// reason says why a token was refused without echoing it.
func reason(err error) string {
	var expired *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &expired):
		return "the token has expired; sign in again"
	case strings.Contains(msg, "audience"):
		return "the token is for another audience"
	case strings.Contains(msg, "issuer"):
		return "the token is from another issuer"
	case strings.Contains(msg, "signature"), strings.Contains(msg, "key"):
		return "the token's signature does not verify"
	default:
		return "the token is malformed"
	}
}
