package temporalx

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Démarche's Temporal identities. Each has its own API key; the Temporal
// server's authorizer (devstack/temporalembed) lets each do what it needs and
// nothing more.
const (
	IdentityWorker       = "worker"
	IdentityGateway      = "gateway"
	IdentityEarlyWarning = "earlywarning"
	IdentityPartners     = "partners"
	IdentityFunding      = "funding"
	IdentityRoster       = "roster"
	IdentityAudit        = "audit"
	IdentityAuditor      = "auditor"
	IdentityObserver     = "observer"
	IdentityAdmin        = "admin"
)

// Identities lists every Temporal identity, in the order docs print them.
var Identities = []string{IdentityWorker, IdentityGateway, IdentityEarlyWarning, IdentityPartners,
	IdentityFunding, IdentityRoster, IdentityAudit, IdentityAuditor, IdentityObserver, IdentityAdmin}

// Environment variables and files of Temporal credentials.
const (
	// EnvKeyFile names the file holding this process's API key (one
	// identity: `demarche serve <svc>` in production).
	EnvKeyFile = "DEMARCHE_TEMPORAL_KEY_FILE"
	// EnvCredentialsDir names a folder of <identity>.key files (demarche
	// dev's data folder has one).
	EnvCredentialsDir = "DEMARCHE_TEMPORAL_CREDENTIALS_DIR"
	// EnvKeyHashesFile names the file of key hashes the server checks
	// (demarche temporal-server).
	EnvKeyHashesFile = "DEMARCHE_TEMPORAL_KEY_HASHES_FILE"
	// CredentialsDir is the folder of a data folder holding the dev keys.
	CredentialsDir = "temporal-credentials"
	// KeyHashesFile is the file, beside the keys, listing their hashes.
	KeyHashesFile = "key-hashes"
)

// ErrUnknownIdentity is returned for an identity not in Identities.
var ErrUnknownIdentity = errors.New("temporal: unknown identity")

// ErrNoCredential is returned when a client has no key for its identity.
var ErrNoCredential = errors.New("temporal: no credential")

// KnownIdentity says whether id is one of Identities.
func KnownIdentity(id string) bool { return slices.Contains(Identities, id) }

// NewKey makes a random API key for an identity: "<identity>.<secret>", the
// secret 32 random bytes (base64url). The prefix lets the server find the
// identity's hash; only the whole key proves it.
func NewKey(identity string) (string, error) {
	if !KnownIdentity(identity) {
		return "", fmt.Errorf("%w %q", ErrUnknownIdentity, identity)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("temporal key for %s: %w", identity, err)
	}
	return identity + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// KeyIdentity is the identity a key claims (the part before its first dot).
func KeyIdentity(key string) string {
	id, _, ok := strings.Cut(strings.TrimSpace(key), ".")
	if !ok {
		return ""
	}
	return id
}

// KeyHash is what a server keeps of a key: its SHA-256 (the secret is 256
// random bits, so a fast hash is enough).
type KeyHash [sha256.Size]byte

// HashKey hashes a key.
func HashKey(key string) KeyHash { return sha256.Sum256([]byte(strings.TrimSpace(key))) }

// Matches compares in constant time.
func (h KeyHash) Matches(key string) bool {
	k := HashKey(key)
	return subtle.ConstantTimeCompare(h[:], k[:]) == 1
}

// EnsureKeys makes a key for every identity in dir (0600 files
// <identity>.key, kept across restarts) and the hashes file beside them; it
// returns the hashes, by identity.
func EnsureKeys(dir string) (map[string]KeyHash, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("temporal credentials: %w", err)
	}
	hashes := map[string]KeyHash{}
	var lines []string
	for _, id := range Identities {
		file := KeyFile(dir, id)
		key, err := readKey(file)
		if errors.Is(err, os.ErrNotExist) {
			if key, err = NewKey(id); err != nil {
				return nil, err
			}
			if err = os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("temporal credentials: %w", err)
			}
		} else if err != nil {
			return nil, err
		}
		if KeyIdentity(key) != id {
			return nil, fmt.Errorf("temporal credentials: %s holds a key for %q, not %q", file, KeyIdentity(key), id)
		}
		h := HashKey(key)
		hashes[id] = h
		lines = append(lines, id+" "+hex.EncodeToString(h[:]))
		// A key being rotated out (RotateKey) stays valid beside the new
		// one until RetireKey: its hash stays in the file.
		if old, err := readKey(OldKeyFile(dir, id)); err == nil {
			oh := HashKey(old)
			lines = append(lines, id+" "+hex.EncodeToString(oh[:]))
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, KeyHashesFile), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("temporal credentials: %w", err)
	}
	return hashes, nil
}

// KeyFile is an identity's key file in a credentials folder.
func KeyFile(dir, identity string) string { return filepath.Join(dir, identity+".key") }

// OldKeyFile is where RotateKey keeps an identity's previous key until
// RetireKey.
func OldKeyFile(dir, identity string) string { return filepath.Join(dir, identity+".key.old") }

// ErrRotationPending: an identity's previous key is still kept (OldKeyFile):
// retire it before rotating again.
var ErrRotationPending = errors.New("a rotation of this identity's key is not finished")

// RotateKey starts the rotation of identity's key in dir: the current key
// moves to OldKeyFile and EnsureKeys makes a new one; the hashes file then
// lists both, so a server restarted on it takes either while the services
// move to the new key. RetireKey ends the rotation.
func RotateKey(dir, identity string) error {
	if !KnownIdentity(identity) {
		return fmt.Errorf("temporal credentials: %w %q", ErrUnknownIdentity, identity)
	}
	old := OldKeyFile(dir, identity)
	if _, err := os.Stat(old); err == nil {
		return fmt.Errorf("temporal credentials: %s exists: %w (retire the previous key first)", old, ErrRotationPending)
	}
	if err := os.Rename(KeyFile(dir, identity), old); err != nil {
		return fmt.Errorf("temporal credentials: rotate %s: %w", identity, err)
	}
	_, err := EnsureKeys(dir)
	return err
}

// RetireKey ends a rotation: identity's previous key is removed and the
// hashes file no longer lists it (a server restarted on it refuses it).
func RetireKey(dir, identity string) error {
	if err := os.Remove(OldKeyFile(dir, identity)); err != nil {
		return fmt.Errorf("temporal credentials: retire %s's previous key: %w", identity, err)
	}
	_, err := EnsureKeys(dir)
	return err
}

// LoadKeyHashes reads a hashes file: lines "<identity> <sha256 hex>" ('#'
// comments and blank lines skipped); an identity may have several hashes
// (a key being rotated).
func LoadKeyHashes(file string) (map[string][]KeyHash, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("temporal key hashes: %w", err)
	}
	defer f.Close()
	out := map[string][]KeyHash{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("temporal key hashes %s:%d: want \"<identity> <sha256 hex>\"", file, n)
		}
		if !KnownIdentity(fields[0]) {
			return nil, fmt.Errorf("temporal key hashes %s:%d: %w %q", file, n, ErrUnknownIdentity, fields[0])
		}
		b, err := hex.DecodeString(fields[1])
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("temporal key hashes %s:%d: not a SHA-256 in hex", file, n)
		}
		out[fields[0]] = append(out[fields[0]], KeyHash(b))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("temporal key hashes %s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("temporal key hashes %s: no hash: every caller would be refused", file)
	}
	return out, nil
}

func readKey(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("temporal key file %s is empty", file)
	}
	return key, nil
}

// Credentials say where a process finds its Temporal API keys: a single key
// file (a production service: its own identity), or a folder of
// <identity>.key files (demarche dev's data folder, tests, the CLI on a dev
// machine).
type Credentials struct {
	KeyFile string
	Dir     string
}

// CredentialsFromEnv reads DEMARCHE_TEMPORAL_KEY_FILE and
// DEMARCHE_TEMPORAL_CREDENTIALS_DIR.
func CredentialsFromEnv() Credentials {
	return Credentials{KeyFile: os.Getenv(EnvKeyFile), Dir: os.Getenv(EnvCredentialsDir)}
}

// key is the API key for identity ("": whatever this process has).
func (c Credentials) key(identity string) (string, error) {
	if c.KeyFile != "" {
		key, err := readKey(c.KeyFile)
		if err != nil {
			return "", fmt.Errorf("temporal key file (--temporal-key-file, env %s): %w", EnvKeyFile, err)
		}
		if identity != "" && KeyIdentity(key) != identity {
			return "", fmt.Errorf("temporal key file %s holds the key of %q; this client acts as %q", c.KeyFile, KeyIdentity(key), identity)
		}
		return key, nil
	}
	if c.Dir != "" && identity != "" {
		key, err := readKey(KeyFile(c.Dir, identity))
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return "", nil
}

var (
	credMu       sync.Mutex
	defaultCreds *Credentials
	credsByAddr  = map[string]Credentials{}
)

// SetDefaultCredentials sets where every Dial of this process finds its key
// (the CLI calls it once from --temporal-key-file). Without a call, Dial reads
// the environment.
func SetDefaultCredentials(c Credentials) {
	credMu.Lock()
	defer credMu.Unlock()
	defaultCreds = &c
}

// SetCredentialsFor makes every Dial of hostPort take its identity's key
// from dir, whatever the process default; the returned func undoes it. An
// embedded stack registers its own frontend and folder.
func SetCredentialsFor(hostPort, dir string) func() {
	credMu.Lock()
	defer credMu.Unlock()
	credsByAddr[hostPort] = Credentials{Dir: dir}
	return func() {
		credMu.Lock()
		defer credMu.Unlock()
		delete(credsByAddr, hostPort)
	}
}

// CredentialsFor is where a Dial of hostPort finds its key.
func CredentialsFor(hostPort string) Credentials {
	credMu.Lock()
	defer credMu.Unlock()
	if c, ok := credsByAddr[hostPort]; ok {
		return c
	}
	if defaultCreds != nil {
		return *defaultCreds
	}
	return CredentialsFromEnv()
}

// KeyFor is the API key a Dial of hostPort as identity presents ("" when
// there is none: the server will refuse the client).
func KeyFor(hostPort, identity string) (string, error) {
	return CredentialsFor(hostPort).key(identity)
}
