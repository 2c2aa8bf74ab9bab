package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/demarche/demarche/pkg/natsauth"
	"github.com/demarche/demarche/pkg/natsx"
)

// RestoreOptions of a restore.
type RestoreOptions struct {
	// From is the backup folder.
	From string
	// IdentityFile decrypts it ("": From.key, the key a dev backup made).
	IdentityFile string
	// DataDir is the new dev data folder (absent or empty). Unset: a
	// cluster restore through NATSURL (the restorer's credentials in it).
	DataDir  string
	NATSURL  string
	Progress io.Writer
}

// RestoreResult tells what was restored.
type RestoreResult struct {
	Manifest *Manifest
	Streams  []StreamEntry // as the server holds them after the restore
	Duration time.Duration
}

// ErrCorrupt: a backup file whose hash is not the manifest's.
var ErrCorrupt = errors.New("backup damaged or altered")

// Restore restores a backup (RestoreOptions). Nothing is written before the
// key is known to be the backup's and every encrypted file's hash is checked.
func Restore(ctx context.Context, opts RestoreOptions, log *zap.Logger) (*RestoreResult, error) {
	start := time.Now()
	m, err := ReadManifest(opts.From)
	if err != nil {
		return nil, err
	}
	if opts.DataDir != "" {
		if err := emptyOrAbsent(opts.DataDir, "--data-dir"); err != nil {
			return nil, fmt.Errorf("%w; restore writes into a new or empty data folder only, never over one", err)
		}
		if m.Kind != KindDev {
			return nil, fmt.Errorf("--data-dir: backup %s is a %s backup (its streams only): restore it into a cluster (--nats-url, no --data-dir) and Temporal's PostgreSQL with pg_restore", opts.From, m.Kind)
		}
	}
	idFile := opts.IdentityFile
	if idFile == "" {
		idFile = KeyFileFor(opts.From)
		if _, err := os.Stat(idFile); err != nil {
			return nil, fmt.Errorf("--identity: not given, and no key beside the backup (%s): give the identity of one of the backup's recipients (%s)", idFile, strings.Join(m.Recipients, ", "))
		}
	}
	id, err := LoadIdentity(idFile)
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	if err := checkKey(m, id); err != nil {
		return nil, err
	}
	// Every file as the manifest says, before anything is written.
	check := func(rel, want string) error {
		got, _, err := fileSum(filepath.Join(opts.From, rel))
		if err != nil {
			return fmt.Errorf("backup %s: %w", opts.From, err)
		}
		if got != want {
			return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrCorrupt, filepath.Join(opts.From, rel), got, want)
		}
		return nil
	}
	for _, s := range m.Streams {
		if err := check(s.File, s.EncryptedSHA256); err != nil {
			return nil, err
		}
	}
	if m.Data != nil {
		if err := check(m.Data.Path, m.Data.SHA256); err != nil {
			return nil, err
		}
	}
	res := &RestoreResult{Manifest: m}
	natsURL := opts.NATSURL
	if opts.DataDir != "" {
		if err := restoreFiles(opts, m, id); err != nil {
			return nil, err
		}
		say(opts.Progress, "data folder %s: %d files back (Temporal's database, keys, credentials, anchors, dev issuer)", opts.DataDir, len(m.Files))
		srv, url, err := serveAs(opts.DataDir, natsauth.Restorer, log)
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		natsURL = url
	}
	nc, _, err := natsx.Connect(natsURL, "demarche-restore", log)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	for _, s := range m.Streams {
		exists, err := streamExists(nc, s.Name)
		if err != nil {
			return nil, err
		}
		if exists {
			return nil, fmt.Errorf("restore %s: %w: restore into a cluster without Démarche's streams (before demarche admin provision), or remove it first", s.Name, errStreamExists)
		}
	}
	for _, s := range m.Streams {
		plain, err := decrypt(m, filepath.Join(opts.From, s.File), id)
		if err != nil {
			return nil, err
		}
		files, _, err := readTar(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.File, err)
		}
		meta, archive := files["backup.json"].data, files["stream.arc.s2"].data
		if sum(meta) != s.MetaSHA256 || sum(archive) != s.SHA256 {
			return nil, fmt.Errorf("%w: the snapshot of %s does not have the manifest's SHA-256", ErrCorrupt, s.Name)
		}
		st, err := restoreStream(ctx, nc, s.Name, meta, archive)
		if err != nil {
			return nil, err
		}
		if st.Msgs != s.Messages || st.LastSeq != s.LastSeq || (s.Messages > 0 && st.FirstSeq != s.FirstSeq) {
			return nil, fmt.Errorf("restore %s: the server holds %d messages (seq %d-%d), the backup %d (seq %d-%d)", s.Name, st.Msgs, st.FirstSeq, st.LastSeq, s.Messages, s.FirstSeq, s.LastSeq)
		}
		got := s
		got.Messages, got.FirstSeq, got.LastSeq, got.Consumers = st.Msgs, st.FirstSeq, st.LastSeq, st.Consumers
		res.Streams = append(res.Streams, got)
		say(opts.Progress, "stream %-28s %6d messages (seq %d-%d) restored, as in the manifest", s.Name, st.Msgs, st.FirstSeq, st.LastSeq)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// restoreFiles writes the data folder's files back, each checked against
// the manifest, with the mode it had.
func restoreFiles(opts RestoreOptions, m *Manifest, id *Identity) error {
	if m.Data == nil {
		return fmt.Errorf("backup %s holds no data folder files", opts.From)
	}
	plain, err := decrypt(m, filepath.Join(opts.From, m.Data.Path), id)
	if err != nil {
		return err
	}
	files, _, err := readTar(plain)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, m.Data.Path, err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	for _, e := range m.Files {
		f, ok := files[e.Path]
		if !ok || sum(f.data) != e.SHA256 {
			return fmt.Errorf("%w: %s in %s is missing or not the manifest's", ErrCorrupt, e.Path, m.Data.Path)
		}
		rel := filepath.FromSlash(e.Path)
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("%w: %s is outside the data folder", ErrCorrupt, e.Path)
		}
		dst := filepath.Join(opts.DataDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		mode := os.FileMode(e.Mode)
		if mode == 0 {
			mode = 0o600
		}
		if err := os.WriteFile(dst, f.data, mode); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
	}
	return nil
}
