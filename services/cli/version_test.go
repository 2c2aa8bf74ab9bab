package cli

import (
	"bufio"
	"debug/buildinfo"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// requiredVersion is the version go.mod requires of path ("" when it does not).
func requiredVersion(t *testing.T, gomod, path string) string {
	t.Helper()
	f, err := os.Open(gomod)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == path {
			return fields[1]
		}
	}
	return ""
}

// TestVersionCommand builds a binary of the CLI (testdata/version: the
// command tree without the devstack module, so no Temporal server) with a
// version set the way make release sets it, and runs `version --json` and
// `version` in it: the versions printed are those Go recorded in that binary
// and those services/go.mod requires; a module not linked says so; the
// version needs no configuration (a broken codec key file is ignored).
func TestVersionCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary of the CLI")
	}
	bin := filepath.Join(t.TempDir(), "demarche-cli")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/demarche/demarche/services/cli.version=v9.8.7", "./testdata/version")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	runIt := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DEMARCHE_CODEC_KEY=/nonexistent/key.json")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var got VersionInfo
	if err := json.Unmarshal([]byte(runIt("version", "--json")), &got); err != nil {
		t.Fatalf("version --json is not JSON: %v", err)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	linked := map[string]string{}
	for _, d := range bi.Deps {
		linked[d.Path] = d.Version
	}
	for path, shown := range map[string]string{
		modTemporalSDK: got.Temporal.SDK, modTemporalAPI: got.Temporal.API,
		modNATSClient: got.NATS.Client, modNATSServer: got.NATS.Server,
		modTemporalServer: got.Temporal.Server, modTemporalUI: got.Temporal.UI,
	} {
		want, ok := linked[path]
		if !ok {
			want = notLinked
		}
		if shown != want {
			t.Errorf("%s: version shows %q, the binary's build info %q", path, shown, want)
		}
	}
	// The clients the CLI links are services/go.mod's; the Temporal server
	// is never linked into services (only the devstack module imports it).
	for path, shown := range map[string]string{modTemporalSDK: got.Temporal.SDK, modNATSClient: got.NATS.Client, modTemporalAPI: got.Temporal.API} {
		if want := requiredVersion(t, "../go.mod", path); shown != want {
			t.Errorf("%s: version shows %q, services/go.mod requires %q", path, shown, want)
		}
	}
	if got.Temporal.Server != notLinked {
		t.Errorf("the Temporal server is linked into the services module's CLI (%s): only devstack may import it", got.Temporal.Server)
	}
	if got.Version != "v9.8.7" {
		t.Errorf("version %q, want the one set at link time, v9.8.7", got.Version)
	}
	if got.GoVersion != bi.GoVersion || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("go %q on %q, want %q on %s/%s", got.GoVersion, got.Platform, bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	}
	table := runIt("version")
	for _, line := range []string{"demarche         v9.8.7", "temporal server  " + notLinked, "temporal sdk     " + got.Temporal.SDK, "nats client      " + got.NATS.Client} {
		if !strings.Contains(table, line) {
			t.Errorf("table lacks %q:\n%s", line, table)
		}
	}

	cmd := newVersionCmd(&App{})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"-o", "yaml"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Errorf("-o yaml: want an error naming --output, got %v", err)
	}
}

// TestVersionFrom: values set at link time win; without them the VCS
// stamp gives the commit and the commit's time (never the build's); a
// "(devel)" main module is "devel"; a replaced module shows the replacement.
func TestVersionFrom(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/demarche/demarche/devstack", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: modTemporalServer, Version: "v1.32.1"},
			{Path: modNATSServer, Version: "v2.15.2"},
			{Path: modNATSClient, Version: "v1.55.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.55.1"}},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-07T05:00:00Z"}, {Key: "vcs.modified", Value: "true"}},
	}
	v := versionFrom(bi, "", "", "")
	if v.Version != "devel" || v.Commit != "abc123" || v.Date != "2026-12-07T05:00:00Z" || !v.Modified || v.GoVersion != "go1.26.8" {
		t.Errorf("from the VCS stamp: %+v", v)
	}
	if v.Temporal.Server != "v1.32.1" || v.NATS.Server != "v2.15.2" || v.NATS.Client != "v1.55.1" || v.Temporal.SDK != notLinked {
		t.Errorf("modules: %+v %+v", v.Temporal, v.NATS)
	}
	v = versionFrom(bi, "v0.1.0", "def456", "2026-12-06T00:00:00Z")
	if v.Version != "v0.1.0" || v.Commit != "def456" || v.Date != "2026-12-06T00:00:00Z" {
		t.Errorf("link-time values must win: %+v", v)
	}
	if v := versionFrom(nil, "devel-0888fc653897-dirty", "", ""); !v.Modified {
		t.Errorf("a -dirty version is a modified tree: %+v", v)
	}
	bi.Main.Version = "v0.2.0"
	if v := versionFrom(bi, "", "", ""); v.Version != "v0.2.0" {
		t.Errorf("main module version: %q", v.Version)
	}
	if v := versionFrom(nil, "", "", ""); v.Version != "devel" || v.Commit != "unknown" || v.Date != "unknown" || v.Temporal.Server != notLinked {
		t.Errorf("without build info: %+v", v)
	}
}
