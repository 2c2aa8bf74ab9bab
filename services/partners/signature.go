package partners

import (
	"time"

	"github.com/demarche/demarche/pkg/webhooksig"
)

// SignatureHeader carries the webhook signature (pkg/webhooksig, shared with
// the gateway's role webhooks):
//
//	X-Demarche-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// The receiver recomputes the HMAC with its shared secret over the timestamp, a
// dot and the raw body, compares in constant time, and refuses a timestamp
// outside its tolerance (replays). Several v1 values may appear (secret rotation):
// one matching is enough.
const SignatureHeader = webhooksig.Header

// Signature verification errors (wrapped by Verify).
var (
	ErrBadSignature     = webhooksig.ErrBadSignature
	ErrSignatureExpired = webhooksig.ErrSignatureExpired
)

// Sign returns the signature header value for body at time t.
func Sign(secret []byte, body []byte, t time.Time) string { return webhooksig.Sign(secret, body, t) }

// Verify checks a signature header against the raw body with the shared
// secret: the HMAC must match and the timestamp be within tolerance of now.
// Receivers of Démarche webhooks call it before trusting a delivery.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	return webhooksig.Verify(secret, header, body, now, tolerance)
}
