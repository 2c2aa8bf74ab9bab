package natsauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Rotation. A NATS server reads the password hashes from one file,
// PasswordsFile beside authorization.conf, which authorization.conf includes
// (nats-server's `include` directive): it defines one variable per identity,
// DEMARCHE_NATS_<IDENTITY>_PASSWORD (PasswordVariable), that the identity's
// user entry reads. `nats-server --signal reload` parses the configuration
// again, included files too, so a new hash in that file takes effect at the
// reload: the old password is refused from then on (the server closes the
// connections that used it), the new one accepted, and every other
// identity's connection stays as it was (its hash did not change). The
// previous form, the variables in the servers' environment, was read once at
// start: a reload kept the old hash.
//
// A Démarche process re-reads its credentials file at each (re)connection
// (CurrentPassword, used by pkg/natsx): write the identity's new .creds file
// and its new hash (Rotate), then reload, and the service reconnects with the
// new password by itself, without a restart.

// PasswordsFile is the file of the password hashes, next to
// authorization.conf (include paths are relative to the including file).
const PasswordsFile = "nats-passwords.conf"

// PasswordsFileName is the password hash file in dir (`demarche admin
// credentials --dir`).
func PasswordsFileName(dir string) string { return filepath.Join(dir, PasswordsFile) }

// bcryptCost is the cost of the hashes the servers check: 11, nats-server's
// own `nats server passwd` default.
const bcryptCost = 11

// ReadPasswords reads the hashes of PasswordsFile in dir, by identity (none
// when the file does not exist yet).
func ReadPasswords(dir string) (map[Identity]string, error) {
	file := PasswordsFileName(dir)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return map[Identity]string{}, nil
	} else if err != nil {
		return nil, err
	}
	out := map[Identity]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, v, ok := strings.Cut(line, ":")
		id, known := identityOfVariable(strings.TrimSpace(name))
		h, err := strconv.Unquote(strings.TrimSpace(v))
		if !ok || !known || err != nil {
			return nil, fmt.Errorf("%s line %d: want DEMARCHE_NATS_<IDENTITY>_PASSWORD: \"<bcrypt hash>\"", file, i+1)
		}
		out[id] = h
	}
	return out, nil
}

// identityOfVariable is the identity whose PasswordVariable is name.
func identityOfVariable(name string) (Identity, bool) {
	rest, ok := strings.CutPrefix(name, "DEMARCHE_NATS_")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, "_PASSWORD")
	if !ok || rest == "" {
		return "", false
	}
	for _, id := range append(slices.Clone(Identities), DeployIdentities()...) {
		if PasswordVariable(id) == name {
			return id, true
		}
	}
	// Outside identities a deployment adds (partners, signal sources): the
	// variable loses the case of the organisation's code; partner codes are
	// upper case, signal sources lower case.
	low := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
	if org, ok := strings.CutPrefix(low, "partner-"); ok {
		return PartnerIdentity(strings.ToUpper(org)), true
	}
	return Identity(low), true
}

// WritePasswords writes PasswordsFile in dir: the bcrypt hash of each
// credentials' password, keeping the hash already there when it matches (a
// run that changes nothing rewrites nothing a server would see differently).
// The file is rewritten in place (writeInPlace), mode 0600: the NATS
// servers alone read it.
func WritePasswords(dir string, creds map[Identity]Credentials) error {
	old, err := ReadPasswords(dir)
	if err != nil {
		return err
	}
	ids := make([]Identity, 0, len(creds))
	for id := range creds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	b.WriteString("# The NATS servers' password hashes (bcrypt), one variable per identity, read by\n")
	b.WriteString("# authorization.conf (include \"" + PasswordsFile + "\"). Written by `demarche admin credentials`;\n")
	b.WriteString("# after a change, reload the servers (nats-server --signal reload).\n")
	for _, id := range ids {
		h, kept := old[id]
		if !kept || bcrypt.CompareHashAndPassword([]byte(h), []byte(creds[id].Password)) != nil {
			nh, err := bcrypt.GenerateFromPassword([]byte(creds[id].Password), bcryptCost)
			if err != nil {
				return fmt.Errorf("hash %s's password: %w", id, err)
			}
			h = string(nh)
		}
		// Quoted: a quoted string is never taken for a $variable.
		fmt.Fprintf(&b, "%s: %q\n", PasswordVariable(id), h)
	}
	return writeInPlace(PasswordsFileName(dir), b.String())
}

// Rotate gives id a new random password in its credentials file in dir
// (FileName), rewritten in place (writeInPlace). Write the hashes afterwards
// (WritePasswords) and reload the NATS servers; the service connected as id
// reconnects with the new password by itself (pkg/natsx re-reads its file).
func Rotate(dir string, id Identity) (Credentials, error) {
	if err := id.Check(); err != nil {
		return Credentials{}, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Credentials{}, err
	}
	c := Credentials{Identity: id, Password: base64.RawURLEncoding.EncodeToString(b)}
	if err := writeInPlace(FileName(dir, id), c.Identity.User()+":"+c.Password+"\n"); err != nil {
		return Credentials{}, fmt.Errorf("write credentials: %w", err)
	}
	remember(c, FileName(dir, id))
	return c, nil
}

// writeInPlace rewrites file in place (same inode, mode 0600), not by
// renaming a new file over it: compose and docker bind-mount a single file by
// its inode, and a container would keep seeing the old file after a rename.
// A reader catching the file half written fails and tries again (a server's
// reload is refused and keeps the old configuration; a client's reconnection
// uses its previous password and retries).
func writeInPlace(file, text string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("folder of %s: %w", file, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close() // already failing: the write error is reported
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // already failing: the Sync error is reported
		return fmt.Errorf("write %s: %w", file, err)
	}
	return f.Close()
}

// loadedFrom remembers the file each credentials were read from (key: user
// and the password read), so that a connection made with them can read the
// file again when it reconnects: after a rotation it holds the new password.
var loadedFrom sync.Map

func remember(c Credentials, file string) {
	loadedFrom.Store(c.Identity.User()+"\x00"+c.Password, file)
}

// CredentialsFileOf is the file the credentials (user, password) were read
// from by Load or Ensure in this process, "" when none.
func CredentialsFileOf(user, password string) string {
	if f, ok := loadedFrom.Load(user + "\x00" + password); ok {
		return f.(string)
	}
	return ""
}

// CurrentPassword is the password to connect as user now: the one in the
// credentials file the given password was read from, read again (a rotation
// replaced it), else the given password (credentials from no file, or a file
// that no longer reads as user's).
func CurrentPassword(user, password string) string {
	file := CredentialsFileOf(user, password)
	if file == "" {
		return password
	}
	c, err := Load(file)
	if err != nil || c.Identity.User() != user {
		return password
	}
	return c.Password
}
