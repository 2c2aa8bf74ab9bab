package payloadcodec

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// keyFile is a key on disk: JSON, mode 0600.
//
//	{"id": "2026-11-prod", "aes256": "<32 bytes, base64>"}
type keyFile struct {
	ID     string `json:"id"`
	AES256 string `json:"aes256"`
}

// LoadKeyFile reads a key file.
func LoadKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("codec key file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return Key{}, fmt.Errorf("codec key file %s: not a key file (want JSON {\"id\": ..., \"aes256\": base64 of 32 bytes}): %w", path, err)
	}
	secret, err := base64.StdEncoding.DecodeString(f.AES256)
	if err != nil {
		return Key{}, fmt.Errorf("codec key file %s: aes256: not base64: %w", path, err)
	}
	k, err := NewKey(f.ID, secret)
	if err != nil {
		return Key{}, fmt.Errorf("codec key file %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes a key to a new file, readable by its owner only; an
// existing file is never overwritten (it may be the only copy of a key old
// histories need).
func WriteKeyFile(path string, k Key) error {
	b, err := json.MarshalIndent(keyFile{ID: k.ID, AES256: base64.StdEncoding.EncodeToString(k.secret)}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("codec key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("codec key file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close() // already failing: the write error is reported
		return fmt.Errorf("codec key file %s: %w", path, err)
	}
	return f.Close()
}

// NewKeyID is a fresh key id: the date and a random suffix, so ids of keys
// made on one day by different people differ.
func NewKeyID(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (it crashes the program instead)
	id := time.Now().UTC().Format("20060102") + "-" + base64.RawURLEncoding.EncodeToString(b)
	if prefix != "" {
		id = prefix + "-" + id
	}
	return strings.ReplaceAll(id, "_", "-")
}

// LoadKeyring reads the active key file and the older ones. No file at all
// is no keyring (nil, nil): payloads go to Temporal as they are.
func LoadKeyring(activeFile string, oldFiles []string) (*Keyring, error) {
	var older []Key
	for _, f := range oldFiles {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := LoadKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", FlagOldKey, err)
		}
		older = append(older, k)
	}
	var active *Key
	if activeFile != "" {
		k, err := LoadKeyFile(activeFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", FlagKey, err)
		}
		active = &k
	}
	if active == nil && len(older) == 0 {
		return nil, nil
	}
	return NewKeyring(active, older...)
}

// DevKeyFile is the key file's name in a `demarche dev` data folder.
const DevKeyFile = "codec-key.json"

// EnsureDevKey returns the key file of a `demarche dev` data folder,
// making one on first use. A data folder keeps its key: its histories
// need it.
func EnsureDevKey(dir string) (string, error) {
	path := filepath.Join(dir, DevKeyFile)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("codec key file: %w", err)
	}
	k, err := GenerateKey(NewKeyID("dev"))
	if err != nil {
		return "", err
	}
	if err := WriteKeyFile(path, k); err != nil {
		return "", err
	}
	return path, nil
}
