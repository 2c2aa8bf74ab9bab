// Package payloadcodec encrypts Temporal payloads at rest: AES-256-GCM under
// a keyring of named keys. The active key encrypts; older keys stay in the
// ring to decrypt the histories written before a rotation, so a rotated
// cluster still replays its old crises. Each encrypted payload names its key
// in its metadata, so a reader missing that key says which one.
//
// The keyring is a converter.PayloadCodec. Démarche applies it at the gRPC
// layer of every Temporal client (Interceptors): what leaves a process for
// the Temporal server is encrypted, what comes back is decrypted, so the
// workflows, the gateway and the auditor's tools that read raw histories see
// plain payloads and the server's database holds ciphertext only.
package payloadcodec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload. The encoding is the one Temporal's
// tooling (UI, CLI) recognises as "needs a codec".
const (
	// EncodingEncrypted is the payload's "encoding" metadata once encrypted.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that encrypted the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher names the cipher, for a reader years later.
	MetadataCipher = "encryption-cipher"
	// Cipher is the one cipher this codec writes.
	Cipher = "AES-256-GCM"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// Flags and environment variables naming the key files, for every command
// that talks to Temporal (their help points here when a key is missing).
const (
	FlagKey    = "--codec-key"
	FlagOldKey = "--codec-old-key"
	EnvKey     = "DEMARCHE_CODEC_KEY"
	EnvOldKeys = "DEMARCHE_CODEC_OLD_KEYS"
	// FlagKeyring and EnvKeyring name a keyring file (LoadKeyringFile): the
	// active key and the old ones in one file every process reads.
	FlagKeyring = "--codec-keyring"
	EnvKeyring  = "DEMARCHE_CODEC_KEYRING"
)

// Sentinels, matched with errors.Is.
var (
	// ErrMissingKey: a payload was encrypted with a key the keyring lacks.
	ErrMissingKey = errors.New("payload encrypted with a key this process does not have")
	// ErrNoActiveKey: the keyring can decrypt but has no key to encrypt with.
	ErrNoActiveKey = errors.New("no active codec key to encrypt with")
	// ErrCorrupt: an encrypted payload does not authenticate under its key
	// (altered, truncated, or a different key with the same id).
	ErrCorrupt = errors.New("encrypted payload does not authenticate")
)

// Key is one named AES-256 key.
type Key struct {
	ID     string
	secret []byte
	aead   cipher.AEAD
}

// NewKey makes a key from its id and 32 secret bytes.
func NewKey(id string, secret []byte) (Key, error) {
	if err := checkID(id); err != nil {
		return Key{}, err
	}
	if len(secret) != KeySize {
		return Key{}, fmt.Errorf("codec key %q: %d bytes, an AES-256 key is %d", id, len(secret), KeySize)
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return Key{}, fmt.Errorf("codec key %q: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("codec key %q: %w", id, err)
	}
	return Key{ID: id, secret: slices.Clone(secret), aead: aead}, nil
}

// GenerateKey makes a new random key with this id.
func GenerateKey(id string) (Key, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("generate codec key: %w", err)
	}
	return NewKey(id, secret)
}

// checkID: a key id is written in every payload's metadata and in file
// names: short, printable, no spaces or separators.
func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("codec key id %q: must be 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("codec key id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// Keyring is the active key and the older ones kept for decryption. It is a
// converter.PayloadCodec, safe for concurrent use (it never changes).
type Keyring struct {
	active *Key
	keys   map[string]*Key
}

var _ converter.PayloadCodec = (*Keyring)(nil)

// NewKeyring makes a keyring. active may be nil (a ring that only decrypts:
// an auditor's); two keys with one id are refused.
func NewKeyring(active *Key, older ...Key) (*Keyring, error) {
	k := &Keyring{keys: map[string]*Key{}}
	add := func(key Key) error {
		if key.aead == nil {
			return fmt.Errorf("codec key %q: not made by NewKey", key.ID)
		}
		if _, dup := k.keys[key.ID]; dup {
			return fmt.Errorf("codec keys: id %q given twice (each key needs its own id)", key.ID)
		}
		k.keys[key.ID] = &key
		return nil
	}
	if active != nil {
		if err := add(*active); err != nil {
			return nil, err
		}
		k.active = k.keys[active.ID]
	}
	for _, key := range older {
		if err := add(key); err != nil {
			return nil, err
		}
	}
	if len(k.keys) == 0 {
		return nil, errors.New("codec keyring: no key")
	}
	return k, nil
}

// ActiveID is the id of the key that encrypts ("" for a decrypt-only ring).
func (k *Keyring) ActiveID() string {
	if k == nil || k.active == nil {
		return ""
	}
	return k.active.ID
}

// IDs lists every key id of the ring, sorted.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Has reports whether the ring holds the key with this id.
func (k *Keyring) Has(id string) bool {
	if k == nil {
		return false
	}
	_, ok := k.keys[id]
	return ok
}

// Encrypted reports whether a payload is one this codec wrote, and its key id.
func Encrypted(p *commonpb.Payload) (keyID string, ok bool) {
	md := p.GetMetadata()
	if string(md[converter.MetadataEncoding]) != EncodingEncrypted {
		return "", false
	}
	return string(md[MetadataKeyID]), true
}

// Encode encrypts each payload with the active key. A payload already
// encrypted is left as it is: the gRPC layer may pass one request twice
// (retries), and encrypting twice would bury the payload under two keys.
func (k *Keyring) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if _, done := Encrypted(p); done || p == nil {
			out[i] = p
			continue
		}
		if k == nil || k.active == nil {
			return payloads, ErrNoActiveKey
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshal payload: %w", err)
		}
		a := k.active.aead
		nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec: nonce: %w", err)
		}
		// The key id is authenticated data: a payload relabelled with
		// another id fails to decrypt instead of decrypting under a wrong key.
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(k.active.ID),
				MetadataCipher:             []byte(Cipher),
			},
			Data: a.Seal(nonce, nonce, plain, []byte(k.active.ID)),
		}
	}
	return out, nil
}

// Decode decrypts each payload this codec encrypted; other payloads (those
// written before a key was configured) pass unchanged.
func (k *Keyring) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		id, enc := Encrypted(p)
		if !enc {
			out[i] = p
			continue
		}
		key := k.key(id)
		if key == nil {
			return payloads, MissingKeyError(id, k.IDs())
		}
		a := key.aead
		data := p.GetData()
		if len(data) < a.NonceSize()+a.Overhead() {
			return payloads, fmt.Errorf("%w: key %q: %d bytes is too short", ErrCorrupt, id, len(data))
		}
		plain, err := a.Open(nil, data[:a.NonceSize()], data[a.NonceSize():], []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("%w: key %q (the key file under that id is not the key that encrypted it, or the payload was altered)", ErrCorrupt, id)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return payloads, fmt.Errorf("%w: key %q: %v", ErrCorrupt, id, err)
		}
		out[i] = &dec
	}
	return out, nil
}

func (k *Keyring) key(id string) *Key {
	if k == nil {
		return nil
	}
	return k.keys[id]
}

// MissingKeyError says which key is missing and how to give it.
func MissingKeyError(id string, have []string) error {
	holds := "no codec key is configured"
	if len(have) > 0 {
		holds = "the keys given are " + strings.Join(have, ", ")
	}
	return fmt.Errorf("%w: key id %q (%s); pass that key's file with %s (the active key) or %s (an older key, repeatable), or env %s / %s, or list it in the keyring file (%s, env %s)",
		ErrMissingKey, id, holds, FlagKey, FlagOldKey, EnvKey, EnvOldKeys, FlagKeyring, EnvKeyring)
}
