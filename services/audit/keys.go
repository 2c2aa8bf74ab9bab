package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables that configure the signing key.
const (
	EnvSigningKey     = "DEMARCHE_AUDIT_SIGNING_KEY"      // base64 ed25519 seed (32 bytes)
	EnvSigningKeyFile = "DEMARCHE_AUDIT_SIGNING_KEY_FILE" // a file holding the base64 seed
	// EnvPublicKey is the base64 ed25519 public key `audit verify` trusts.
	EnvPublicKey = "DEMARCHE_AUDIT_PUBLIC_KEY"
	// EnvOldPublicKeys are the base64 public keys (comma-separated) of the
	// signing keys a rotation replaced, which `audit verify` accepts too.
	EnvOldPublicKeys = "DEMARCHE_AUDIT_OLD_PUBLIC_KEYS"
	// DevKeyFile and DevPublicKeyFile are `demarche dev`'s audit signing key
	// (base64 seed, mode 0600) and its public key (base64), in the data folder.
	DevKeyFile       = "audit-signing.key"
	DevPublicKeyFile = "audit-signing.pub"
)

// EnsureSigningKey reads the signing key in file, or makes one there (a
// random ed25519 seed, base64, mode 0600, kept) with its public key beside
// it (file with .pub for .key, base64): so `demarche dev` signs heads,
// records and anchors from its first start, like a production audit service
// with its key.
func EnsureSigningKey(file string) (ed25519.PrivateKey, error) {
	key, err := LoadSigningKey(file)
	if err == nil {
		return key, writePublicKey(file, key)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	_, key, err = ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("make audit signing key: %w", err)
	}
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write audit signing key: %w", err)
	}
	return key, writePublicKey(file, key)
}

// PublicKeyFileOf is where EnsureSigningKey keeps the public key of the key in file.
func PublicKeyFileOf(file string) string {
	return strings.TrimSuffix(file, ".key") + ".pub"
}

func writePublicKey(file string, key ed25519.PrivateKey) error {
	text := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)) + "\n"
	if b, err := os.ReadFile(PublicKeyFileOf(file)); err == nil && string(b) == text {
		return nil
	}
	if err := os.WriteFile(PublicKeyFileOf(file), []byte(text), 0o644); err != nil {
		return fmt.Errorf("write audit public key: %w", err)
	}
	return nil
}

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
