package release

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repoRoot is the top of the repository this test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command in dir and returns its combined output; it fails the
// test unless the command succeeds.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := try(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return out
}

func try(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gitEnv lets a temporary clone commit and tag without a user configuration.
var gitEnv = []string{"GIT_AUTHOR_NAME=release rehearsal", "GIT_AUTHOR_EMAIL=rehearsal@demarche.invalid",
	"GIT_COMMITTER_NAME=release rehearsal", "GIT_COMMITTER_EMAIL=rehearsal@demarche.invalid"}

// clone is a fresh clone of this repository's HEAD in a new temporary
// folder: what CI and a release manager start from (uncommitted changes of
// the working tree are not in it).
func clone(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	run(t, repoRoot(t), nil, "git", "clone", "--quiet", "--no-hardlinks", repoRoot(t), dst)
	if out, _ := try(repoRoot(t), nil, "git", "status", "--porcelain", "--untracked-files=no"); strings.TrimSpace(out) != "" {
		t.Logf("the working tree has uncommitted changes; this test uses HEAD (%s)", strings.TrimSpace(run(t, dst, nil, "git", "rev-parse", "--short", "HEAD")))
	}
	return dst
}

// stamp is what deploy/release/build.sh stamps into a build of dir.
func stamp(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, dir, nil, "deploy/release/build.sh", "--print")), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("build.sh --print: %q", line)
		}
		m[k] = v
	}
	return m
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// required is the version a go.mod requires of a module path.
func required(t *testing.T, gomod, path string) string {
	t.Helper()
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	t.Fatalf("%s does not require %s", gomod, path)
	return ""
}

// TestReleaseReproducible is `make release` for linux/amd64 in one fresh
// clone and deploy/release/build.sh in another (another path, another time
// zone, optionally a cold build cache): the two binaries must be the same
// bytes. It then checks what `make release` wrote (binary static and
// stripped, SHA256SUMS that verify, a CycloneDX SBOM naming the Temporal
// server) and that `demarche version --json` prints the stamped version,
// commit and commit time and the module versions of devstack/go.mod.
// Slow (two builds of a 239 MB binary): make release-test runs it.
func TestReleaseReproducible(t *testing.T) {
	if os.Getenv("DEMARCHE_RELEASE_TEST") == "" {
		t.Skip("builds the demarche binary twice for linux/amd64 (minutes on 2 cores): run it with make release-test (DEMARCHE_RELEASE_TEST=1; DEMARCHE_RELEASE_COLD=1 makes the second build's cache empty)")
	}
	a, b := clone(t, "a"), clone(t, filepath.Join("elsewhere", "deeper", "b"))
	st := stamp(t, a)
	start := time.Now()
	out := run(t, a, nil, "make", "release", "RELEASE_PLATFORMS=linux/amd64")
	t.Logf("make release (linux/amd64, SBOM, sums) took %v:\n%s", time.Since(start).Round(time.Second), out)

	env := []string{"TZ=Pacific/Auckland", "VERSION=" + st["VERSION"], "COMMIT=" + st["COMMIT"], "DATE=" + st["DATE"]}
	if os.Getenv("DEMARCHE_RELEASE_COLD") != "" {
		env = append(env, "GOCACHE="+t.TempDir())
	}
	start = time.Now()
	run(t, b, env, "deploy/release/build.sh", filepath.Join(b, "out"), "linux", "amd64")
	t.Logf("second build (build.sh in another clone%s) took %v", map[bool]string{true: ", cold cache"}[os.Getenv("DEMARCHE_RELEASE_COLD") != ""], time.Since(start).Round(time.Second))

	first, second := filepath.Join(a, "dist", "demarche_linux_amd64"), filepath.Join(b, "out", "demarche_linux_amd64")
	h1, h2 := sha256File(t, first), sha256File(t, second)
	fi, _ := os.Stat(first)
	t.Logf("demarche_linux_amd64: %d bytes (%.1f MB), sha256 %s", fi.Size(), float64(fi.Size())/1e6, h1)
	if h1 != h2 {
		t.Fatalf("two builds of %s differ: %s and %s", st["COMMIT"], h1, h2)
	}

	// What make release wrote: sums that verify, and one SBOM per binary.
	sums := run(t, filepath.Join(a, "dist"), nil, "sha256sum", "-c", "SHA256SUMS")
	if !strings.Contains(sums, "demarche_linux_amd64: OK") || !strings.Contains(sums, "demarche_linux_amd64.cdx.json: OK") {
		t.Errorf("SHA256SUMS does not cover the binary and its SBOM:\n%s", sums)
	}
	var sbom struct {
		BOMFormat string `json:"bomFormat"`
		Metadata  struct {
			Component struct {
				Name, Version string
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name, Version, Purl string
		} `json:"components"`
	}
	raw, err := os.ReadFile(first + ".cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sbom); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	if sbom.BOMFormat != "CycloneDX" || sbom.Metadata.Component.Version != st["VERSION"] {
		t.Errorf("SBOM: format %q, main component %+v; want CycloneDX, version %s", sbom.BOMFormat, sbom.Metadata.Component, st["VERSION"])
	}
	inSBOM := map[string]string{}
	for _, c := range sbom.Components {
		inSBOM[c.Name] = c.Version
	}
	t.Logf("SBOM: %d components", len(sbom.Components))
	for _, path := range []string{"go.temporal.io/server", "go.temporal.io/sdk", "github.com/nats-io/nats-server/v2", "modernc.org/sqlite"} {
		if want := required(t, filepath.Join(a, "devstack", "go.mod"), path); inSBOM[path] != want {
			t.Errorf("SBOM: %s at %q, devstack/go.mod requires %s", path, inSBOM[path], want)
		}
	}

	// Static (no ELF interpreter: no libc needed) and stripped (no symbol table).
	ef, err := elf.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the release binary is dynamically linked (it has an ELF interpreter): CGO_ENABLED=0 was lost")
		}
	}
	if ef.Section(".symtab") != nil {
		t.Error("the release binary has a symbol table: -s was lost")
	}
	ef.Close()

	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return
	}
	var v struct {
		Version, Commit, Date string
		Modified              bool
		GoVersion             string
		Temporal              struct{ Server, SDK, API, UI string }
		NATS                  struct{ Server, Client string }
	}
	if err := json.Unmarshal([]byte(run(t, a, nil, first, "version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != st["VERSION"] || v.Commit != st["COMMIT"] || v.Date != st["DATE"] || v.Modified {
		t.Errorf("version --json: %s %s %s modified=%v; stamped %v", v.Version, v.Commit, v.Date, v.Modified, st)
	}
	gomod := filepath.Join(a, "devstack", "go.mod")
	for path, got := range map[string]string{
		"go.temporal.io/server": v.Temporal.Server, "go.temporal.io/sdk": v.Temporal.SDK, "go.temporal.io/api": v.Temporal.API,
		"github.com/temporalio/ui-server/v2": v.Temporal.UI, "github.com/nats-io/nats-server/v2": v.NATS.Server, "github.com/nats-io/nats.go": v.NATS.Client,
	} {
		if want := required(t, gomod, path); got != want {
			t.Errorf("version --json: %s %q, devstack/go.mod requires %s", path, got, want)
		}
	}
	if want := "go" + goWorkVersion(t, a); v.GoVersion != want {
		t.Errorf("built with %s, go.work names %s", v.GoVersion, want)
	}
}

// goWorkVersion is the Go version go.work names (1.26.8).
func goWorkVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.work names no go version")
	}
	return string(m[1])
}

// TestContainerBuildFile: the container build file builds demarche with the
// release's script (so the binary is dist/'s), from the Go of go.work, into
// a distroless/static (or scratch) image run as uid/gid 10001; and nothing
// that runs the image needs a shell, which that image does not have.
func TestContainerBuildFile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a build stage and a runtime stage, found FROM %v", froms)
	}
	if want := "golang:" + goWorkVersion(t, root) + "-"; !strings.HasPrefix(froms[0][1], want) {
		t.Errorf("build stage %s: want %s… (go.work's Go: another Go builds other bytes)", froms[0][1], want)
	}
	final := froms[len(froms)-1][1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" && !strings.HasPrefix(final, "scratch@") {
		t.Errorf("runtime stage %s: want gcr.io/distroless/static… or scratch", final)
	}
	last := df[strings.LastIndex(df, "\nFROM "):]
	if !regexp.MustCompile(`(?m)^USER 10001:10001$`).MatchString(last) {
		t.Error("the runtime stage does not run as USER 10001:10001")
	}
	if !strings.Contains(df, "deploy/release/build.sh") || regexp.MustCompile(`(?m)^RUN .*\bgo build\b`).MatchString(df) {
		t.Error("the image must build with deploy/release/build.sh (the release's flags), not its own go build")
	}
	// No shell in the image: health checks, entrypoints and commands exec
	// binaries directly.
	shell := regexp.MustCompile(`CMD-SHELL|"/bin/sh"|\[\s*"sh"|/bin/bash|- sh$|- /bin/sh`)
	files, _ := filepath.Glob(filepath.Join(root, "deploy", "k8s", "*.yaml"))
	files = append(files, filepath.Join(root, "deploy", "compose", "compose.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if shell.MatchString(line) && demarcheImage(string(b)) {
				t.Errorf("%s:%d runs a shell, which the distroless image has not: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

// demarcheImage: the manifest runs Démarche's image (PostgreSQL's has a shell).
func demarcheImage(manifest string) bool {
	return strings.Contains(manifest, "demarche:local") || strings.Contains(manifest, "image: demarche")
}

// TestReleasingProcedure rehearses docs/releasing.md in a fresh clone, every
// step but the build and the push: keep the histories and the schema image
// for the tag, date the CHANGELOG's entry, commit, check, tag; then make
// breaking compares with the new release's image, the tagged histories
// replay, and a tag without its pieces is refused by release-check naming
// each. The clone is thrown away: nothing here touches this repository.
func TestReleasingProcedure(t *testing.T) {
	if testing.Short() {
		t.Skip("rehearses the release procedure in a clone (runs buf and the replay tests): not in -short")
	}
	dir := clone(t, "rehearsal")
	// The release to rehearse: the one CHANGELOG.md has prepared ("## [X.Y.Z]
	// - unreleased", as the first release was), else a far future one.
	tag, entry := "v99.0.0", "## [Unreleased]\n\n## [99.0.0] - 2099-01-02\n"
	changelog, err := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+)\] - unreleased$`).FindSubmatch(changelog); m != nil {
		tag, entry = "v"+string(m[1]), "## ["+string(m[1])+"] - 2099-01-02\n"
	}
	t.Logf("rehearsing release %s", tag)
	start := time.Now()
	step := func(name string, args ...string) string {
		t.Helper()
		s := time.Now()
		out := run(t, dir, gitEnv, name, args...)
		t.Logf("%s %s: %v", name, strings.Join(args, " "), time.Since(s).Round(time.Second))
		return out
	}
	// Before the release, make breaking passes as make lint runs it (against
	// the last release's image, or the baseline before the first).
	if out := step("make", "breaking"); !strings.Contains(out, "fixture change caught") {
		t.Errorf("make breaking before the release:\n%s", out)
	}
	step("make", "tag-histories", "TAG="+tag)
	step("make", "release-baseline", "TAG="+tag)
	step("deploy/release/changelog.sh", tag, "2099-01-02")
	if changelog, err = os.ReadFile(filepath.Join(dir, "CHANGELOG.md")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(changelog), entry) {
		t.Errorf("changelog.sh did not write %q:\n%.900s", entry, changelog)
	}
	if out, err := try(dir, gitEnv, "make", "release-check", "TAG="+tag); err == nil || !strings.Contains(out, "uncommitted changes") {
		t.Errorf("release-check passed on an uncommitted tree:\n%s", out)
	}
	step("git", "add", "-A")
	step("git", "commit", "--quiet", "-m", "Release "+tag+": histories, schema image, CHANGELOG")
	if out := step("make", "release-check", "TAG="+tag); !strings.Contains(out, "release "+tag+": histories, schema image and CHANGELOG entry are in place") {
		t.Errorf("release-check:\n%s", out)
	}
	step("git", "tag", "-a", tag, "-m", "Démarche "+tag)
	if out := step("make", "breaking"); !strings.Contains(out, "buf breaking against release "+tag) || !strings.Contains(out, "fixture change caught") {
		t.Errorf("make breaking after the tag does not compare with the release's image:\n%s", out)
	}
	step("go", "test", "-count=1", "-run", "TestReplayTaggedHistories", "./workflows/crisis/")
	if out, err := try(dir, gitEnv, "make", "release-check", "TAG=v99.0.1"); err == nil ||
		!strings.Contains(out, "make tag-histories TAG=v99.0.1") || !strings.Contains(out, "make release-baseline TAG=v99.0.1") || !strings.Contains(out, "no '## [99.0.1]") {
		t.Errorf("release-check of a tag without its pieces must name each missing one:\n%s", out)
	}
	// A tag without its schema image fails make breaking, naming the step.
	step("git", "tag", "v99.0.1")
	if out, err := try(dir, gitEnv, "make", "breaking"); err == nil || !strings.Contains(out, "make release-baseline TAG=v99.0.1") {
		t.Errorf("make breaking with a tag that has no schema image:\n%s", out)
	}
	t.Logf("rehearsal took %v", time.Since(start).Round(time.Second))
}
