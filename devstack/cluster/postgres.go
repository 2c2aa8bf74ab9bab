package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// PostgresBin is the folder of Debian's PostgreSQL server binaries
// (/usr/lib/postgresql/<version>/bin; the newest), "" when none is installed.
func PostgresBin() string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres") // Glob fails only on a malformed pattern, and this one is constant
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// PostgresOSUser is the system user PostgreSQL runs as when this process is
// root: the server refuses to run as root (and CI runs as root).
const PostgresOSUser = "postgres"

// PostgresCredential is the uid and gid PostgreSQL's processes take: the
// postgres user's when this process is root, nil (this process's) otherwise.
func PostgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(PostgresOSUser)
	if err != nil {
		return nil, fmt.Errorf("user %s (PostgreSQL refuses to run as root): %w", PostgresOSUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid) // a Unix user's ids are numbers
	gid, _ := strconv.Atoi(u.Gid) // a Unix user's ids are numbers
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// InitPostgres creates a PostgreSQL data folder in dataDir (initdb) whose
// superuser is PostgresUser, trusted on loopback: for tests only.
func InitPostgres(bin, dataDir string) error {
	cred, err := PostgresCredential()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
		// The server's user must reach its folder through the parents.
		for d := filepath.Dir(dataDir); d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, fi.Mode().Perm()|0o011) // best effort: if it fails, postgres names the folder it cannot reach
			}
		}
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", dataDir, "-U", PostgresUser, "--auth=trust", "-E", "UTF8")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %v\n%s", dataDir, err, out)
	}
	return nil
}

// PostgresArgs are the server's arguments for a data folder on a loopback port.
func PostgresArgs(dataDir string, port int) []string {
	return []string{"-D", dataDir, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=300"}
}
