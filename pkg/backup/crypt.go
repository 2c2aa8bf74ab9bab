package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
)

// Keys: a backup is encrypted with age (filippo.io/age, X25519) to one or
// more recipients; restore decrypts with an identity (the private key). In a
// dev data folder with neither flag, backup makes a new identity and keeps it
// beside the backup (DIR.key, mode 0600): restore finds it there.

// KeyFileFor is where backup writes (and restore looks for) the identity of
// a backup DIR made without --recipient: DIR.key, beside the backup.
func KeyFileFor(dir string) string { return strings.TrimRight(dir, string(os.PathSeparator)) + ".key" }

// NewIdentityFile makes a new age identity and writes it to file (mode 0600,
// refusing to overwrite one), in age-keygen's format.
func NewIdentityFile(file string) (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("make an age identity: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write the backup's identity %s: %w", file, err)
	}
	_, werr := fmt.Fprintf(f, "# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write the backup's identity %s: %w", file, werr)
	}
	return id, nil
}

// ParseRecipients reads --recipient values: an age public key (age1...) or a
// file of them, one a line.
func ParseRecipients(values []string) ([]age.Recipient, []string, error) {
	var out []age.Recipient
	var names []string
	for _, v := range values {
		text := v
		if !strings.HasPrefix(v, "age1") {
			b, err := os.ReadFile(v)
			if err != nil {
				return nil, nil, fmt.Errorf("--recipient %s: neither an age public key (age1...) nor a readable file: %w", v, err)
			}
			text = string(b)
		}
		rs, err := age.ParseRecipients(strings.NewReader(text))
		if err != nil {
			return nil, nil, fmt.Errorf("--recipient %s: %w", v, err)
		}
		for _, r := range rs {
			out = append(out, r)
			names = append(names, recipientName(r))
		}
	}
	return out, names, nil
}

// Identity is a loaded --identity file: its keys and their public parts.
type Identity struct {
	File       string
	Identities []age.Identity
	// Public are the recipients (public keys) of the identities, to name a
	// wrong key without showing its private part.
	Public []string
}

// LoadIdentity reads an identity file (age-keygen's format, or DIR.key).
func LoadIdentity(file string) (*Identity, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", file, err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", file, err)
	}
	out := &Identity{File: file, Identities: ids}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			out.Public = append(out.Public, x.Recipient().String())
		} else {
			out.Public = append(out.Public, fmt.Sprintf("(%T)", id))
		}
	}
	return out, nil
}

func recipientName(r age.Recipient) string {
	if s, ok := r.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("(%T)", r)
}

// ErrWrongKey is returned when the identity given cannot decrypt a backup.
var ErrWrongKey = errors.New("wrong key")

// checkKey refuses an identity none of whose public keys is a recipient the
// manifest names, before anything is decrypted or written.
func checkKey(m *Manifest, id *Identity) error {
	for _, p := range id.Public {
		for _, r := range m.Recipients {
			if p == r {
				return nil
			}
		}
	}
	return wrongKey(m, id)
}

func wrongKey(m *Manifest, id *Identity) error {
	return fmt.Errorf("%w: this backup is encrypted to %s, the identity %s is %s: give the identity of one of the backup's recipients (--identity)",
		ErrWrongKey, strings.Join(m.Recipients, ", "), id.File, strings.Join(id.Public, ", "))
}

// encryptTo writes src encrypted to the recipients into file (mode 0600).
func encryptTo(file string, rs []age.Recipient, src io.Reader) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w, err := age.Encrypt(f, rs...)
	if err != nil {
		_ = f.Close() // already failing: the encryption error is reported, the partial file is no backup
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	if _, err := io.Copy(w, src); err != nil {
		_ = f.Close() // already failing: the encryption error is reported, the partial file is no backup
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	if err := w.Close(); err != nil {
		_ = f.Close() // already failing: the encryption error is reported, the partial file is no backup
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	return f.Close()
}

// decrypt reads file decrypted with the identity.
func decrypt(m *Manifest, file string, id *Identity) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := age.Decrypt(f, id.Identities...)
	if err != nil {
		var none *age.NoIdentityMatchError
		if errors.As(err, &none) {
			return nil, wrongKey(m, id)
		}
		return nil, fmt.Errorf("decrypt %s: %w", file, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w (the file is damaged or was altered)", file, err)
	}
	return b, nil
}
