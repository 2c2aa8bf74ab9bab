package audit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
	"github.com/demarche/demarche/workflows/trail"
)

// Files of an evidence bundle.
const (
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.sig"
	ChainFile     = "audit/chain.json"
	TrailFile     = "trail.json"
	FiguresFile   = "figures.json"
	HistoryDir    = "histories/"
	// maxBundleFile bounds what VerifyBundle reads of one file.
	maxBundleFile = 512 << 20
)

// ErrBundle is matched (errors.Is) by every bundle verification failure.
var ErrBundle = errors.New("evidence bundle does not verify")

// BundleError names the bundle file that failed verification.
type BundleError struct {
	File    string
	Problem string
}

func (e *BundleError) Error() string { return fmt.Sprintf("bundle file %s: %s", e.File, e.Problem) }

// Unwrap lets callers match ErrBundle.
func (e *BundleError) Unwrap() error { return ErrBundle }

// BundleInput is what goes into an evidence bundle.
type BundleInput struct {
	CrisisID  string
	Histories []History
	Chain     *demarchev1.AuditChain
	// Figures may be nil (a crisis still open has none): no figures.json then.
	Figures   *demarchev1.ClosureFigures
	CreatedBy string
	// Key, when set, signs the manifest.
	Key ed25519.PrivateKey
	Now time.Time
}

var jsonOut = protojson.MarshalOptions{Multiline: true, Indent: "  "}

// FiguresOf reads the closure figures from a crisis history's completion
// (the workflow's final CrisisState); nil when it has not closed.
func FiguresOf(histories []History) *demarchev1.ClosureFigures {
	for _, h := range histories {
		for _, ev := range h.History.GetEvents() {
			if ev.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
				continue
			}
			p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()
			var st demarchev1.CrisisState
			if len(p) > 0 && dataConverter.FromPayload(p[0], &st) == nil && st.GetFigures() != nil {
				return st.GetFigures()
			}
		}
	}
	return nil
}

// TrailOfAll is the decision trail of several histories, in time order.
func TrailOfAll(histories []History) ([]trail.Entry, error) {
	var all []trail.Entry
	for _, h := range histories {
		es, err := TrailOf(h.WorkflowID, h.History)
		if err != nil {
			return nil, fmt.Errorf("decision trail of %s: %w", h.WorkflowID, err)
		}
		all = append(all, es...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all, nil
}

// WriteBundle writes an evidence bundle (tar.gz) and returns its manifest.
func WriteBundle(w io.Writer, in BundleInput) (*demarchev1.EvidenceManifest, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	files := map[string][]byte{}
	for _, h := range in.Histories {
		b, err := jsonOut.Marshal(h.History)
		if err != nil {
			return nil, fmt.Errorf("bundle: history of %s: %w", h.WorkflowID, err)
		}
		files[HistoryDir+h.Name()] = b
	}
	chain, err := jsonOut.Marshal(in.Chain)
	if err != nil {
		return nil, fmt.Errorf("bundle: chain: %w", err)
	}
	files[ChainFile] = chain
	entries, err := TrailOfAll(in.Histories)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if entries == nil {
		entries = []trail.Entry{}
	}
	if files[TrailFile], err = json.MarshalIndent(entries, "", "  "); err != nil {
		return nil, fmt.Errorf("bundle: trail: %w", err)
	}
	if in.Figures != nil {
		if files[FiguresFile], err = jsonOut.Marshal(in.Figures); err != nil {
			return nil, fmt.Errorf("bundle: figures: %w", err)
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	m := &demarchev1.EvidenceManifest{Format: demarchev1.EvidenceBundleFormat, CrisisId: in.CrisisID,
		CreatedAt: timestamppb.New(in.Now), CreatedBy: in.CreatedBy}
	for _, name := range names {
		sum := sha256.Sum256(files[name])
		m.Files = append(m.Files, &demarchev1.ManifestFile{Name: name, Sha256: hex.EncodeToString(sum[:]), Size: int64(len(files[name]))})
	}
	if in.Key != nil {
		m.PublicKey = in.Key.Public().(ed25519.PublicKey)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	manifest, err := jsonOut.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("bundle: manifest: %w", err)
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: in.Now.UTC(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put(ManifestFile, manifest); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if in.Key != nil {
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(in.Key, manifest)) + "\n"
		if err := put(SignatureFile, []byte(sig)); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	for _, name := range names {
		if err := put(name, files[name]); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return m, nil
}

// BundleReport says what a verified bundle holds.
type BundleReport struct {
	CrisisID  string
	Files     int
	Histories int
	// Signer is the manifest signer's key id; empty when unsigned.
	Signer string
	Chain  *Result
}

// ReadBundle reads a bundle's files (no check beyond the archive's shape).
func ReadBundle(r io.Reader) (map[string][]byte, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip file: %v", ErrBundle, err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: not a tar archive: %v", ErrBundle, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, &BundleError{File: hdr.Name, Problem: "is not a regular file"}
		}
		if _, dup := files[hdr.Name]; dup {
			return nil, &BundleError{File: hdr.Name, Problem: "is in the archive twice"}
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxBundleFile+1))
		if err != nil {
			return nil, &BundleError{File: hdr.Name, Problem: fmt.Sprintf("unreadable: %v", err)}
		}
		if len(b) > maxBundleFile {
			return nil, &BundleError{File: hdr.Name, Problem: "is too large"}
		}
		files[hdr.Name] = b
	}
	return files, nil
}

// VerifyBundle checks an evidence bundle offline: every file against the
// manifest (a modified, missing or added file fails, named), the manifest's
// signature when present (and by trusted, when given), the audit chain inside
// with its head, and that each history parses. older are the public keys of
// the signing keys a rotation replaced: the chain's older records (and a
// manifest signed before the rotation) may be signed by them.
func VerifyBundle(r io.Reader, trusted ed25519.PublicKey, older ...ed25519.PublicKey) (*BundleReport, error) {
	files, err := ReadBundle(r)
	if err != nil {
		return nil, err
	}
	manifest, ok := files[ManifestFile]
	if !ok {
		return nil, &BundleError{File: ManifestFile, Problem: "missing"}
	}
	var m demarchev1.EvidenceManifest
	if err := protojson.Unmarshal(manifest, &m); err != nil {
		return nil, &BundleError{File: ManifestFile, Problem: fmt.Sprintf("unreadable: %v", err)}
	}
	if err := m.Validate(); err != nil {
		return nil, &BundleError{File: ManifestFile, Problem: err.Error()}
	}
	rep := &BundleReport{CrisisID: m.GetCrisisId()}
	sig, signed := files[SignatureFile]
	switch {
	case signed && len(m.GetPublicKey()) == 0:
		return nil, &BundleError{File: SignatureFile, Problem: "present, but the manifest names no public key"}
	case !signed && len(m.GetPublicKey()) > 0:
		return nil, &BundleError{File: SignatureFile, Problem: "missing, but the manifest names a signer (" + KeyID(m.GetPublicKey()) + ")"}
	case !signed && trusted != nil:
		return nil, &BundleError{File: SignatureFile, Problem: "missing: the bundle is not signed, but a trusted key was given"}
	case signed:
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
		if err != nil {
			return nil, &BundleError{File: SignatureFile, Problem: "not base64"}
		}
		if trusted != nil && !bytes.Equal(trusted, m.GetPublicKey()) && !slices.ContainsFunc(older, func(k ed25519.PublicKey) bool { return bytes.Equal(k, m.GetPublicKey()) }) {
			return nil, &BundleError{File: SignatureFile, Problem: fmt.Sprintf("signed by key %s, not by the trusted key %s", KeyID(m.GetPublicKey()), KeyID(trusted))}
		}
		if !ed25519.Verify(m.GetPublicKey(), manifest, raw) {
			return nil, &BundleError{File: ManifestFile, Problem: "signature does not verify: the manifest was modified, or manifest.sig replaced"}
		}
		rep.Signer = KeyID(m.GetPublicKey())
	}
	listed := map[string]bool{ManifestFile: true, SignatureFile: true}
	for _, f := range m.GetFiles() {
		listed[f.GetName()] = true
		b, ok := files[f.GetName()]
		if !ok {
			return nil, &BundleError{File: f.GetName(), Problem: "listed in the manifest but missing from the bundle (deleted)"}
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != f.GetSha256() {
			return nil, &BundleError{File: f.GetName(), Problem: fmt.Sprintf("modified: sha256 expected %s, found %s", f.GetSha256(), got)}
		}
		if int64(len(b)) != f.GetSize() {
			return nil, &BundleError{File: f.GetName(), Problem: fmt.Sprintf("size expected %d, found %d", f.GetSize(), len(b))}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !listed[name] {
			return nil, &BundleError{File: name, Problem: "not in the manifest (added)"}
		}
		if strings.HasPrefix(name, HistoryDir) {
			if _, err := trail.LoadJSON(bytes.NewReader(files[name])); err != nil {
				return nil, &BundleError{File: name, Problem: err.Error()}
			}
			rep.Histories++
		}
	}
	rep.Files = len(m.GetFiles())
	rawChain, ok := files[ChainFile]
	if !ok {
		return nil, &BundleError{File: ChainFile, Problem: "missing"}
	}
	var chain demarchev1.AuditChain
	if err := protojson.Unmarshal(rawChain, &chain); err != nil {
		return nil, &BundleError{File: ChainFile, Problem: fmt.Sprintf("unreadable: %v", err)}
	}
	if want := ChainOf(m.GetCrisisId()); chain.GetChain() != want {
		return nil, &BundleError{File: ChainFile, Problem: fmt.Sprintf("holds chain %s, not %s", chain.GetChain(), want)}
	}
	res, err := Verify(chain.GetChain(), chain.GetRecords(), VerifyOptions{Head: chain.GetHead(), OlderKeys: older})
	if err != nil {
		return nil, &BundleError{File: ChainFile, Problem: err.Error()}
	}
	rep.Chain = res
	return rep, nil
}
