package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// Environment variables that configure the signing key.
const (
	EnvSigningKey     = "DEMARCHE_AUDIT_SIGNING_KEY"      // base64 ed25519 seed (32 bytes)
	EnvSigningKeyFile = "DEMARCHE_AUDIT_SIGNING_KEY_FILE" // a file holding the base64 seed
)

// LoadSigningKey reads the ed25519 key that signs chain heads and bundle
// manifests: from path when given (a file holding a base64 seed), else from
// DEMARCHE_AUDIT_SIGNING_KEY, else from the file DEMARCHE_AUDIT_SIGNING_KEY_FILE
// names. No key configured is not an error: it returns nil (nothing is signed).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	source, text := "", ""
	switch {
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		source, text = path, string(b)
	case os.Getenv(EnvSigningKey) != "":
		source, text = EnvSigningKey, os.Getenv(EnvSigningKey)
	case os.Getenv(EnvSigningKeyFile) != "":
		return LoadSigningKey(os.Getenv(EnvSigningKeyFile))
	default:
		return nil, nil
	}
	return ParseSeed(source, text)
}

// ParseSeed decodes a base64 ed25519 seed; source names where it came from.
func ParseSeed(source, text string) (ed25519.PrivateKey, error) {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: not base64: %w", source, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: %d bytes (want a %d-byte ed25519 seed, base64)", source, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey decodes a base64 ed25519 public key.
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("public key: not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key: %d bytes (want %d)", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
