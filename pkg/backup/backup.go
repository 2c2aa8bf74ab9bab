// Package backup takes and restores Démarche's backups: one consistent cut of
// a `demarche dev` data folder (Temporal's SQLite database, every JetStream
// stream and bucket the server holds, the codec keyring, the audit signing
// key and anchors, the NATS and Temporal credentials, the dev issuer), or
// every stream and bucket of a cluster, encrypted with age
// (filippo.io/age) to one or more recipients, with a manifest of counts and
// hashes. `demarche admin backup` and `demarche admin restore` drive it.
//
// A dev backup is taken with the platform stopped: the data folder's lock is
// held for the whole backup, so Temporal's database and the streams are one
// cut (the histories and the events they published agree). A cluster backup
// snapshots each stream on its own (each one consistent in itself); Temporal's
// PostgreSQL is backed up beside it with pg_dump (docs/operations.md), and the
// restore's settle step reconciles the two.
package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsembed"
	"github.com/demarche/demarche/pkg/natsx"
)

// Format is the manifest's format version.
const Format = 1

// The files of a backup folder.
const (
	ManifestFile = "manifest.json"
	// DataFile holds the dev data folder's files but the JetStream store
	// (Temporal's database, keys, credentials, anchors, the dev issuer).
	DataFile   = "data.tar.age"
	StreamsDir = "streams"
)

// Kinds of backup.
const (
	KindDev     = "dev"
	KindCluster = "cluster"
)

// Manifest describes a backup: what it holds, with counts and hashes. It is
// kept in clear beside the encrypted files (it holds no secret: names,
// counts, hashes and the recipients' public keys).
type Manifest struct {
	Format    int       `json:"format"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"createdAt"`
	// Cut says how the copies agree with each other.
	Cut string `json:"cut"`
	// Recipients are the public keys the backup is encrypted to.
	Recipients []string      `json:"recipients"`
	Streams    []StreamEntry `json:"streams"`
	// Files are a dev data folder's files (in DataFile), by path in the folder.
	Files []FileEntry `json:"files,omitempty"`
	// Data is DataFile's own entry (dev).
	Data *FileEntry `json:"data,omitempty"`
}

// StreamEntry is one stream (a bucket is the stream KV_<bucket>).
type StreamEntry struct {
	Name      string    `json:"name"`
	Messages  uint64    `json:"messages"`
	Bytes     uint64    `json:"bytes"`
	FirstSeq  uint64    `json:"firstSeq"`
	LastSeq   uint64    `json:"lastSeq"`
	LastTime  time.Time `json:"lastTime"`
	Consumers int       `json:"consumers"`
	// File is the encrypted snapshot, in the backup folder.
	File string `json:"file"`
	// SHA256 is the snapshot's (the archive the server sent, before
	// encryption); MetaSHA256 its backup.json's; EncryptedSHA256 the file's.
	SHA256          string `json:"sha256"`
	MetaSHA256      string `json:"metaSha256"`
	EncryptedSHA256 string `json:"encryptedSha256"`
	EncryptedSize   int64  `json:"encryptedSize"`
}

// FileEntry is one file, with its size and hash.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Mode   uint32 `json:"mode,omitempty"`
}

// ReadManifest reads DIR/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w (is it a folder written by demarche admin backup?)", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("backup %s: manifest: %w", dir, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("backup %s: manifest format %d, this demarche reads format %d", dir, m.Format, Format)
	}
	return &m, nil
}

// Size is the backup's size on disk (encrypted files).
func (m *Manifest) Size() int64 {
	var n int64
	for _, s := range m.Streams {
		n += s.EncryptedSize
	}
	if m.Data != nil {
		n += m.Data.Size
	}
	return n
}

// Options of a backup.
type Options struct {
	// Out is the backup folder; it must not exist or be empty.
	Out string
	// Recipients to encrypt to; none: a new identity in Out.key (dev only).
	Recipients []string
	// DataDir is a dev data folder (stopped). Unset: a cluster backup
	// through NATSURL (with the provisioner's credentials in it).
	DataDir string
	NATSURL string
	// Progress receives one line per step ("" : quiet).
	Progress io.Writer
}

// Result of a backup.
type Result struct {
	Manifest *Manifest
	// KeyFile is the identity written beside the backup ("" when recipients
	// were given).
	KeyFile  string
	Duration time.Duration
}

func say(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", a...)
	}
}

// ErrDataDirInUse: a dev backup of a data folder a running `demarche dev` holds.
var ErrDataDirInUse = errors.New("data folder in use by a running demarche dev")

// ErrNotEmpty: a backup into, or a restore into, a folder that holds something.
var ErrNotEmpty = errors.New("folder not empty")

// lockFile is the data folder's lock, the one `demarche dev` takes.
const lockFile = ".lock"

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data folder %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close() // opened only to lock it, nothing written: the Flock error is the one to report
		return nil, fmt.Errorf("%w: %s: stop it first (Ctrl-C); a dev backup is taken stopped, so Temporal's histories and the streams are one cut", ErrDataDirInUse, dir)
	}
	return f, nil
}

// emptyOrAbsent refuses a folder that exists and holds anything.
func emptyOrAbsent(dir, what string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if len(entries) > 0 {
		names := []string{}
		for i, e := range entries {
			if i == 3 {
				names = append(names, "...")
				break
			}
			names = append(names, e.Name())
		}
		return fmt.Errorf("%w: %s %s holds %d entries (%s): it must be a new or empty folder", ErrNotEmpty, what, dir, len(entries), strings.Join(names, ", "))
	}
	return nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSum(file string) (string, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// Backup writes a backup folder (Options).
func Backup(ctx context.Context, opts Options, log *zap.Logger) (*Result, error) {
	start := time.Now()
	if opts.Out == "" {
		return nil, errors.New("--out: is required: the folder to write the backup into")
	}
	if err := emptyOrAbsent(opts.Out, "--out"); err != nil {
		return nil, err
	}
	res := &Result{}
	m := &Manifest{Format: Format, CreatedAt: time.Now().UTC()}
	rs, names, err := ParseRecipients(opts.Recipients)
	if err != nil {
		return nil, err
	}
	var natsURL string
	if opts.DataDir != "" {
		m.Kind = KindDev
		m.Cut = "dev data folder backed up stopped (its lock held throughout): Temporal's database and every stream are one cut"
		if _, err := os.Stat(filepath.Join(opts.DataDir, "nats")); err != nil {
			return nil, fmt.Errorf("--data-dir %s: not a demarche dev data folder (no JetStream store, nats/): %w", opts.DataDir, err)
		}
		lock, err := lockDir(opts.DataDir)
		if err != nil {
			return nil, err
		}
		defer lock.Close()
	} else {
		if len(rs) == 0 {
			return nil, errors.New("--recipient: is required for a cluster backup (an age public key, age1..., or a file of them); only a dev backup (--data-dir) may make its own key")
		}
		m.Kind = KindCluster
		m.Cut = "cluster: each stream snapshotted on its own, one after another (each consistent in itself); Temporal's PostgreSQL with pg_dump beside it; restore settles the difference"
		natsURL = opts.NATSURL
	}
	if err := os.MkdirAll(filepath.Join(opts.Out, StreamsDir), 0o700); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	if len(rs) == 0 {
		res.KeyFile = KeyFileFor(opts.Out)
		id, err := NewIdentityFile(res.KeyFile)
		if err != nil {
			return nil, err
		}
		rs, names = []age.Recipient{id.Recipient()}, []string{id.Recipient().String()}
		say(opts.Progress, "no --recipient: made a new key %s (mode 0600, public key %s); restore finds it there. Keep it apart from the backup's copies: whoever holds it reads the backup", res.KeyFile, names[0])
	}
	m.Recipients = names

	if m.Kind == KindDev {
		// Serve the stopped folder's store on a free loopback port, as the
		// provisioner, for as long as the snapshots take.
		srv, url, err := serveDataDir(opts.DataDir, log)
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		natsURL = url
	}
	nc, _, err := natsx.Connect(natsURL, "demarche-backup", log)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if m.Streams, err = backupStreams(ctx, nc, opts.Out, rs, opts.Progress); err != nil {
		return nil, err
	}
	if m.Kind == KindDev {
		if err := backupFiles(opts.DataDir, opts.Out, rs, m); err != nil {
			return nil, err
		}
		say(opts.Progress, "data folder files: %d (Temporal's database, keys, credentials, anchors, dev issuer), %d bytes encrypted", len(m.Files), m.Data.Size)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(opts.Out, ManifestFile), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	res.Manifest, res.Duration = m, time.Since(start)
	return res, nil
}

// serveDataDir starts a NATS server on a stopped data folder's JetStream
// store, with its store key and users, on a free loopback port; the URL
// carries the provisioner's credentials.
func serveDataDir(dataDir string, log *zap.Logger) (*natsembed.Server, string, error) {
	return serveAs(dataDir, natsauth.Provisioner, log)
}

func serveAs(dataDir string, id natsauth.Identity, log *zap.Logger) (*natsembed.Server, string, error) {
	creds, err := natsauth.Ensure(filepath.Join(dataDir, CredentialsDir))
	if err != nil {
		return nil, "", err
	}
	var key string
	if b, err := os.ReadFile(filepath.Join(dataDir, natsembed.StoreKeyFile)); err == nil {
		key = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	if log.Core().Enabled(zap.InfoLevel) { // the server's notices are noise here; a quieter logger stays as it is
		log = log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	}
	srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(dataDir, "nats"), Users: creds, StoreKey: key}, log)
	if err != nil {
		return nil, "", err
	}
	url, err := creds[id].URL(srv.URL())
	if err != nil {
		srv.Stop()
		return nil, "", err
	}
	return srv, url, nil
}

// CredentialsDir is `demarche dev`'s folder of NATS credentials (devstack/stack.CredentialsDir).
const CredentialsDir = "nats-credentials"

func backupStreams(ctx context.Context, nc *nats.Conn, out string, rs []age.Recipient, progress io.Writer) ([]StreamEntry, error) {
	names, err := streamNames(nc)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var entries []StreamEntry
	for _, name := range names {
		meta, st, archive, err := snapshot(ctx, nc, name)
		if err != nil {
			return nil, err
		}
		e := StreamEntry{Name: name, Messages: st.Msgs, Bytes: st.Bytes, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, LastTime: st.LastTime,
			Consumers: st.Consumers, File: filepath.Join(StreamsDir, name+".tar.age"), SHA256: sum(archive), MetaSHA256: sum(meta)}
		var tb bytes.Buffer
		if err := writeTar(&tb, []tarFile{{"backup.json", meta, 0o600}, {"stream.arc.s2", archive, 0o600}}); err != nil {
			return nil, err
		}
		file := filepath.Join(out, e.File)
		if err := encryptTo(file, rs, &tb); err != nil {
			return nil, err
		}
		if e.EncryptedSHA256, e.EncryptedSize, err = fileSum(file); err != nil {
			return nil, err
		}
		say(progress, "stream %-28s %6d messages (seq %d-%d), %d consumers, %d bytes encrypted", name, e.Messages, e.FirstSeq, e.LastSeq, e.Consumers, e.EncryptedSize)
		entries = append(entries, e)
	}
	return entries, nil
}

type tarFile struct {
	name string
	data []byte
	mode int64
}

func writeTar(w io.Writer, files []tarFile) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

func readTar(b []byte) (map[string]tarFile, []string, error) {
	tr := tar.NewReader(bytes.NewReader(b))
	out := map[string]tarFile{}
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, order, nil
		}
		if err != nil {
			return nil, nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, err
		}
		out[h.Name] = tarFile{h.Name, data, h.Mode}
		order = append(order, h.Name)
	}
}

// skipped are the data folder's entries a backup leaves out: the JetStream
// store (its streams are in the snapshots), the lock, and demarche dev's
// "demo funds still to open" mark (devstack/stack.FundsPendingFile): a
// restored folder must never open funds.
var skipped = []string{"nats", lockFile, "demo-funds-pending"}

// backupFiles puts every other file of the data folder (Temporal's
// database, codec key, store key, audit keys and anchors, credentials, the
// dev issuer and demo tokens) into DataFile.
func backupFiles(dataDir, out string, rs []age.Recipient, m *Manifest) error {
	var files []tarFile
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path) // path comes from walking dataDir: it is always under it
		if rel == "." {
			return nil
		}
		if slices.Contains(skipped, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, tarFile{filepath.ToSlash(rel), b, int64(info.Mode().Perm())})
		m.Files = append(m.Files, FileEntry{Path: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: sum(b), Mode: uint32(info.Mode().Perm())})
		return nil
	})
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if !slices.ContainsFunc(m.Files, func(f FileEntry) bool { return f.Path == TemporalDatabase }) {
		return fmt.Errorf("--data-dir %s: no Temporal database (%s)", dataDir, TemporalDatabase)
	}
	var tb bytes.Buffer
	if err := writeTar(&tb, files); err != nil {
		return err
	}
	file := filepath.Join(out, DataFile)
	if err := encryptTo(file, rs, &tb); err != nil {
		return err
	}
	s, n, err := fileSum(file)
	if err != nil {
		return err
	}
	m.Data = &FileEntry{Path: DataFile, Size: n, SHA256: s}
	return nil
}

// TemporalDatabase is `demarche dev`'s Temporal SQLite file in the data folder.
const TemporalDatabase = "temporal.db"
