package payloadcodec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// A keyring file lists the key files a process uses: the active key, which
// encrypts new payloads, and the older ones, kept to decrypt what they
// encrypted. Every process of a data folder reads the same one
// (<data>/codec-keyring.json, DevKeyringFile; in production --codec-keyring),
// so a rotation is one command (RotateKeyringFile) and a plain restart then
// picks it up: no flag to change on every process, and no restart that
// forgets the old key.
//
//	{"active": "codec-keys/20261207-x1.json", "old": ["codec-key.json"]}
//
// Paths are relative to the keyring file's folder (or absolute). The keys
// themselves stay in their key files, mode 0600.
type keyringFile struct {
	Active string   `json:"active"`
	Old    []string `json:"old,omitempty"`
}

// DevKeyringFile is the keyring file's name in a `demarche dev` data folder.
const DevKeyringFile = "codec-keyring.json"

// KeysDir is where RotateKeyringFile writes new key files, beside the keyring.
const KeysDir = "codec-keys"

func readKeyringFile(path string) (keyringFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keyringFile{}, fmt.Errorf("codec keyring: %w", err)
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil || f.Active == "" {
		return keyringFile{}, fmt.Errorf("codec keyring %s: want JSON {\"active\": \"<key file>\", \"old\": [\"<key file>\", ...]} (%v)", path, err)
	}
	return f, nil
}

func resolve(keyring, file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(filepath.Dir(keyring), file)
}

// LoadKeyringFile reads a keyring file and the key files it lists, and the
// extra old key files given (--codec-old-key beside --codec-keyring).
func LoadKeyringFile(path string, extraOld []string) (*Keyring, error) {
	f, err := readKeyringFile(path)
	if err != nil {
		return nil, err
	}
	active, err := LoadKeyFile(resolve(path, f.Active))
	if err != nil {
		return nil, fmt.Errorf("codec keyring %s: active key: %w", path, err)
	}
	var older []Key
	for _, o := range f.Old {
		k, err := LoadKeyFile(resolve(path, o))
		if err != nil {
			return nil, fmt.Errorf("codec keyring %s: old key: %w", path, err)
		}
		older = append(older, k)
	}
	for _, o := range extraOld {
		if o == "" {
			continue
		}
		k, err := LoadKeyFile(o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", FlagOldKey, err)
		}
		if !slices.ContainsFunc(older, func(x Key) bool { return x.ID == k.ID }) && k.ID != active.ID {
			older = append(older, k)
		}
	}
	return NewKeyring(&active, older...)
}

// EnsureDevKeyring returns the keyring file of a `demarche dev` data folder,
// making it on first use: around the folder's existing key (codec-key.json,
// EnsureDevKey, made if missing), so a folder made before keyrings keeps
// its key.
func EnsureDevKeyring(dir string) (string, error) {
	path := filepath.Join(dir, DevKeyringFile)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("codec keyring: %w", err)
	}
	if _, err := EnsureDevKey(dir); err != nil {
		return "", err
	}
	return path, writeKeyringFile(path, keyringFile{Active: DevKeyFile})
}

// RotateKeyringFile makes a new key (id; a fresh one when empty) in
// KeysDir/<id>.json beside the keyring, makes it the active key and keeps
// the previous active key first among the old ones. A keyring file that does
// not exist yet starts from the key file DevKeyFile beside it, when there is
// one (a dev data folder made before keyrings). Restart every process that
// reads the keyring: new payloads go under the new key, old ones still
// decrypt.
func RotateKeyringFile(path, id string) (Key, error) {
	f, err := readKeyringFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(filepath.Dir(path), DevKeyFile)); serr != nil {
			return Key{}, fmt.Errorf("codec keyring %s does not exist (and no %s beside it): make a first key with `demarche codec new-key`, or start `demarche dev` once", path, DevKeyFile)
		}
		f, err = keyringFile{Active: DevKeyFile}, nil
	}
	if err != nil {
		return Key{}, err
	}
	if _, err := LoadKeyringFile(path, nil); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Key{}, err // never rotate away from a keyring that does not load
	}
	if id == "" {
		id = NewKeyID("")
	}
	k, err := GenerateKey(id)
	if err != nil {
		return Key{}, err
	}
	rel := filepath.Join(KeysDir, id+".json")
	if err := WriteKeyFile(resolve(path, rel), k); err != nil {
		return Key{}, err
	}
	f.Old = append([]string{f.Active}, slices.DeleteFunc(f.Old, func(o string) bool { return o == f.Active })...)
	f.Active = rel
	return k, writeKeyringFile(path, f)
}

// writeKeyringFile writes the keyring in place (a file bind-mounted into a
// container keeps its inode and sees the change), mode 0600.
func writeKeyringFile(path string, f keyringFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("codec keyring: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("codec keyring: %w", err)
	}
	return nil
}
