package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
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

// TestVersionCommand: `demarche version --json` prints the versions of the
// modules linked into this (test) binary, equal to what Go's build info and
// services/go.mod say; a module not linked says so; the table names them.
func TestVersionCommand(t *testing.T) {
	app := &App{}
	var out bytes.Buffer
	cmd := newVersionCmd(app)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got VersionInfo
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out.String())
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
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
			t.Errorf("%s: version shows %q, the build info %q", path, shown, want)
		}
	}
	// The clients the CLI links are services/go.mod's; the Temporal server
	// is never linked into this package (only the devstack module imports it).
	for path, shown := range map[string]string{modTemporalSDK: got.Temporal.SDK, modNATSClient: got.NATS.Client, modTemporalAPI: got.Temporal.API} {
		if want := requiredVersion(t, "../go.mod", path); shown != want {
			t.Errorf("%s: version shows %q, services/go.mod requires %q", path, shown, want)
		}
	}
	if got.Temporal.Server != notLinked {
		t.Errorf("the Temporal server is linked into services/cli (%s): the cli package must never import it", got.Temporal.Server)
	}
	if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("go %q on %q, want %q on %s/%s", got.GoVersion, got.Platform, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}

	out.Reset()
	cmd = newVersionCmd(app)
	cmd.SetOut(&out)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"demarche  ", "temporal server  " + got.Temporal.Server, "temporal sdk  " + got.Temporal.SDK, "nats client  " + got.NATS.Client} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, out.String())
		}
	}
	cmd = newVersionCmd(app)
	cmd.SetOut(&out)
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
