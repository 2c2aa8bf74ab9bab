package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpgrade is the upgrade test: the previous release's binary opens
// crises on a data folder (a drill that has closed and paid, a drill in
// mid-flight, people-driven crises waiting for a decision), is stopped, and
// the current code starts on the same folder: every crisis must continue
// from where it was (the closed drill unchanged, the drill in flight closes,
// the people-driven crises take their next decisions with today's CLI and
// close), every audit chain verifies, and no process dies.
//
// The previous release is built from its tag (git archive into a temporary
// folder, then deploy/release/build.sh, as make release builds it). The test
// runs once the repository has two release tags, upgrading from the newest
// tag that is not HEAD; until then it skips, saying so.
// DEMARCHE_UPGRADE_FROM=<tag, commit, or a demarche binary such as a
// downloaded dist/demarche_linux_amd64> runs it now against that build.
func TestUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test on child processes of the real stack; skipped with -short")
	}
	oldBin, from := previousRelease(t)
	newBin := buildBinary(t)
	t.Logf("upgrade: from %s (%s) to this tree (%s)", from, binVersion(oldBin), binVersion(newBin))

	dir, err := os.MkdirTemp("", "demarche-upgrade-")
	if err != nil {
		t.Fatal(err)
	}
	p := newPlatform(t, oldBin, dir)
	t.Cleanup(func() {
		p.stopAll()
		if t.Failed() {
			t.Logf("upgrade: data folder and logs kept in %s\n%s", dir, p.logTails(40))
			return
		}
		_ = os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := func() {
		t.Helper()
		if err := p.startDev(ctx); err != nil {
			t.Fatalf("start %s: %v\n%s", p.bin, err, p.logTails(40))
		}
		for _, s := range p.separate {
			if err := p.startService(s); err != nil {
				t.Fatal(err)
			}
		}
	}

	// 1. The previous release opens the crises.
	start()
	w := newWorkload(p)
	done := &crisisRun{name: w.newID("GN"), country: "GN", crisisType: "unconstitutional-change", drill: true}
	if err := w.open(ctx, done); err != nil {
		t.Fatal(err)
	}
	// A drill whose policy waits 20 s before each decision: still in flight
	// when the old release stops.
	flying := &crisisRun{name: w.newID("ML"), country: "ML", crisisType: "unconstitutional-change", drill: true}
	flying.id = chaosDrillID(flying.name)
	if out, err := p.cli(ctx, "duty", "crisis", "open", "--title", "Upgrade "+flying.name, "--country", flying.country,
		"--type", flying.crisisType, "--severity", "3", "--id", flying.name, "--drill", "--drill-delay", "20s", "--drill-time-scale", "0.000001"); err != nil {
		t.Fatalf("open the drill in flight: %v\n%s", err, out)
	}
	w.add(flying)
	waiting := []*crisisRun{
		{name: w.newID("NE"), country: "NE", crisisType: "constitutional-crisis", keepAfter: 1}, // triaged, waits for good offices
		{name: w.newID("NE"), country: "NE", crisisType: "constitutional-crisis", keepAfter: 2}, // waits for an envoy
	}
	for _, c := range waiting {
		if err := w.drive(ctx, c); err != nil {
			t.Fatalf("previous release: drive %s: %v\n%s", c.name, err, p.logTails(40))
		}
	}
	var closedBefore state
	if err := eventually(ctx, 5*time.Minute, "the fast drill closes on the previous release", func() (bool, string) {
		st, err := w.getState(ctx, done.id)
		if err != nil {
			return false, err.Error()
		}
		closedBefore = st
		return st.closed(), "stage " + st.stage()
	}); err != nil {
		t.Fatal(err)
	}
	flyingBefore, err := w.getState(ctx, flying.id)
	if err != nil {
		t.Fatal(err)
	}
	if flyingBefore.closed() {
		t.Fatalf("the drill meant to be in flight had closed before the upgrade (stage %s)", flyingBefore.stage())
	}
	t.Logf("upgrade: before the stop: %s closed, %s at %s, %s and %s waiting for %v and %v", done.id, flying.id, flyingBefore.stage(),
		waiting[0].id, waiting[1].id, waiting[0].kept.pending(), waiting[1].kept.pending())

	// 2. Stop it (as an operator would: SIGTERM, every process).
	for _, name := range append(append([]string(nil), p.separate...), "dev") {
		stopGracefully(t, p, name)
	}
	if u := p.unexpectedExits(); len(u) > 0 {
		t.Fatalf("the previous release died before the upgrade: %v", u)
	}

	// 3. The current code on the same data folder.
	p.bin = newBin
	start()
	if err := eventually(ctx, 10*time.Minute, "the drill in flight closes on the current code", func() (bool, string) {
		st, err := w.getState(ctx, flying.id)
		if err != nil {
			return false, err.Error()
		}
		return st.closed(), "stage " + st.stage()
	}); err != nil {
		t.Error(err)
	}
	closedAfter, err := w.getState(ctx, done.id)
	if err != nil {
		t.Fatal(err)
	}
	if closedAfter.stage() != closedBefore.stage() || !reflect.DeepEqual(closedAfter.decisionKinds(), closedBefore.decisionKinds()) {
		t.Errorf("the drill closed before the upgrade reads differently after it: stage %s, decisions %v; before: %s, %v",
			closedAfter.stage(), closedAfter.decisionKinds(), closedBefore.stage(), closedBefore.decisionKinds())
	}
	for _, c := range waiting {
		st, err := w.getState(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(st.pending(), c.kept.pending()) || st.stage() != c.kept.stage() {
			t.Errorf("%s: before the upgrade at %s waiting for %v; after it at %s waiting for %v", c.id, c.kept.stage(), c.kept.pending(), st.stage(), st.pending())
		}
		c.keepAfter = 0 // today's CLI takes the next decisions, to closure
		if err := w.drive(ctx, c); err != nil {
			t.Errorf("current code: drive %s on: %v", c.id, err)
		}
	}
	for _, c := range w.all() {
		if out, err := auditVerify(ctx, p, c.id); err != nil {
			t.Errorf("audit verify %s after the upgrade: %v\n%s", c.id, err, out)
		}
	}
	for _, u := range p.unexpectedExits() {
		t.Error(u)
	}
}

// previousRelease is the binary of the release to upgrade from and what it
// is; it skips the test when there is none to compare with yet.
func previousRelease(t *testing.T) (string, string) {
	t.Helper()
	if from := os.Getenv("DEMARCHE_UPGRADE_FROM"); from != "" {
		if fi, err := os.Stat(from); err == nil && !fi.IsDir() {
			return from, "binary " + from
		}
		return buildAt(t, from), from
	}
	out, err := exec.Command("git", "tag", "--list", "v*", "--sort=-v:refname").Output()
	if err != nil {
		t.Skipf("the upgrade test needs two release tags and git lists none here (%v); DEMARCHE_UPGRADE_FROM=<tag, commit or demarche binary> runs it against that build", err)
	}
	tags := strings.Fields(string(out))
	if len(tags) < 2 {
		t.Skipf("the upgrade test runs once two releases exist, upgrading from the newest release tag before this code; this clone has %d (%s), so there is nothing to upgrade from yet. DEMARCHE_UPGRADE_FROM=<tag, commit or demarche binary> runs it now against that build",
			len(tags), strings.Join(append(tags, "no v* tag")[:max(1, len(tags))], ", "))
	}
	head := revParse(t, "HEAD")
	for _, tag := range tags {
		if revParse(t, tag+"^{commit}") != head {
			return buildAt(t, tag), tag
		}
	}
	t.Skipf("every release tag (%s) is HEAD: nothing older to upgrade from", strings.Join(tags, ", "))
	return "", ""
}

func revParse(t *testing.T, ref string) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--verify", "--quiet", ref).Output()
	if err != nil {
		t.Fatalf("git rev-parse %s: %v", ref, err)
	}
	return strings.TrimSpace(string(out))
}

// buildAt builds demarche as it was at ref (a tag or a commit): the tree of
// ref (git archive, so this repository and its worktrees are left alone)
// built in a temporary folder the release's way.
func buildAt(t *testing.T, ref string) string {
	t.Helper()
	rev := revParse(t, ref+"^{commit}")
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", strings.TrimSpace(string(top)), rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", ref, err, out)
	}
	logCmd := exec.Command("git", "log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", rev)
	logCmd.Env = append(os.Environ(), "TZ=UTC")
	date, err := logCmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	var build *exec.Cmd
	bin := filepath.Join(src, "out", "demarche_"+runtime.GOOS+"_"+runtime.GOARCH)
	if _, err := os.Stat(filepath.Join(src, "deploy", "release", "build.sh")); err == nil {
		build = exec.Command(filepath.Join(src, "deploy", "release", "build.sh"), filepath.Join(src, "out"), runtime.GOOS, runtime.GOARCH)
		build.Env = append(os.Environ(), "VERSION="+ref, "COMMIT="+rev, "DATE="+strings.TrimSpace(string(date)), "TZ=UTC")
	} else { // a tree from before the release script: the same flags by hand
		build = exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", bin, "./devstack/cmd/demarche")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build demarche at %s: %v\n%s", ref, err, out)
	}
	t.Logf("upgrade: built demarche at %s (%s) in %v", ref, rev[:12], time.Since(started).Round(time.Second))
	return bin
}

// binVersion is what `demarche version` says of a binary (releases before
// the version command say nothing).
func binVersion(bin string) string {
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		return "no version command"
	}
	var v struct{ Version, Commit string }
	if json.Unmarshal(out, &v) != nil {
		return "unreadable version"
	}
	return fmt.Sprintf("%s, commit %.12s", v.Version, v.Commit)
}

// stopGracefully stops one process as an operator does (SIGTERM), and
// kills it only if it has not exited after a minute.
func stopGracefully(t *testing.T, p *platform, name string) {
	t.Helper()
	p.mu.Lock()
	pr := p.procs[name]
	if pr != nil {
		pr.killed = true // an exit we asked for
	}
	p.mu.Unlock()
	if pr == nil {
		return
	}
	_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(time.Minute):
		t.Errorf("%s did not stop within a minute of SIGTERM: killed", name)
		_ = pr.cmd.Process.Signal(syscall.SIGKILL)
		<-pr.done
	}
}
