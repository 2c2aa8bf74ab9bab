package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// Set at link time by `make release` (and the container build):
//
//	-X github.com/demarche/demarche/services/cli.version=v0.1.0
//	-X github.com/demarche/demarche/services/cli.commit=<full hash>
//	-X github.com/demarche/demarche/services/cli.date=<commit time, UTC, RFC 3339>
//
// Unset (go build, go run, tests), they come from the build information Go
// stamps into every binary: the main module's version and the VCS revision
// and commit time. The date is the commit's, never the time of the build, so
// that two builds of one commit are the same bytes.
var version, commit, date string

// Module paths whose versions `demarche version` reports: the servers the
// binary embeds (Temporal, NATS) and the clients every service uses.
const (
	modTemporalServer = "go.temporal.io/server"
	modTemporalSDK    = "go.temporal.io/sdk"
	modTemporalAPI    = "go.temporal.io/api"
	modTemporalUI     = "github.com/temporalio/ui-server/v2"
	modNATSServer     = "github.com/nats-io/nats-server/v2"
	modNATSClient     = "github.com/nats-io/nats.go"
)

// notLinked is the version shown for a module this binary does not contain
// (the Temporal server is linked only into the full demarche binary).
const notLinked = "not linked"

// VersionInfo is what `demarche version` prints; its JSON is the --json form.
type VersionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Date is the commit time (UTC, RFC 3339): reproducible, unlike a build time.
	Date string `json:"date"`
	// Modified: built from a tree with uncommitted changes (a dev build).
	Modified  bool   `json:"modified"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
	Temporal  struct {
		Server string `json:"server"`
		SDK    string `json:"sdk"`
		API    string `json:"api"`
		UI     string `json:"ui"`
	} `json:"temporal"`
	NATS struct {
		Server string `json:"server"`
		Client string `json:"client"`
	} `json:"nats"`
}

// ReadVersion is this binary's version information.
func ReadVersion() VersionInfo {
	bi, _ := debug.ReadBuildInfo() // nil when built without module support: every field says "unknown"
	return versionFrom(bi, version, commit, date)
}

// versionFrom builds the information from Go's build info and the values
// set at link time (which win when set).
func versionFrom(bi *debug.BuildInfo, ver, rev, when string) VersionInfo {
	v := VersionInfo{Version: ver, Commit: rev, Date: when, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	deps := map[string]string{}
	if bi != nil {
		v.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.Date == "" {
					v.Date = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Replace != nil { // what was built is the replacement
				deps[d.Path] = d.Replace.Version
				if d.Replace.Version == "" { // a folder on the builder's machine
					deps[d.Path] = "replaced by " + d.Replace.Path
				}
				continue
			}
			deps[d.Path] = d.Version
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	// A release build carries no VCS stamp; its version says "-dirty" when
	// the tree had uncommitted changes (deploy/release/build.sh).
	if strings.HasSuffix(v.Version, "-dirty") {
		v.Modified = true
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	if v.Date == "" {
		v.Date = "unknown"
	}
	mod := func(path string) string {
		if s, ok := deps[path]; ok && s != "" {
			return s
		}
		return notLinked
	}
	v.Temporal.Server, v.Temporal.SDK, v.Temporal.API, v.Temporal.UI = mod(modTemporalServer), mod(modTemporalSDK), mod(modTemporalAPI), mod(modTemporalUI)
	v.NATS.Server, v.NATS.Client = mod(modNATSServer), mod(modNATSClient)
	return v
}

// newVersionCmd is `demarche version`.
func newVersionCmd(app *App) *cobra.Command {
	var output outputFlag
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print this binary's version, commit, Go version and the Temporal and NATS versions it embeds",
		Long: `Print what this binary is: its release version, the commit it was built from
and that commit's time (the build date of a release: a release is rebuilt
bit for bit from its commit, so the date is the commit's, not the build's),
whether the tree had uncommitted changes, the Go version and platform, and the
versions of the Temporal server, SDK, API and Web UI and of the NATS server and
client compiled in. Module versions come from the build information Go
records in the binary, so they are what was linked, not what a file claims.

A binary built with "go build" or "make build" says "devel" and its commit; one
from "make release" names its tag. "not linked" marks a module that this binary
does not contain.`,
		Example: `  demarche version
  demarche version --json          # for scripts and bug reports
  demarche version -o json | jq -r .temporal.server`,
		Args: cobra.NoArgs,
		// The version never needs a connection, a key or a data folder: it
		// must answer even where the rest of the configuration is wrong.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			app.Out = cmd.OutOrStdout()
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			if asJSON {
				output = "json"
			}
			v := ReadVersion()
			return app.render(output, v, func() error {
				tw := tabwriter.NewWriter(app.Out, 0, 0, 2, ' ', 0)
				dirty := ""
				if v.Modified {
					dirty = " (uncommitted changes)"
				}
				fmt.Fprintf(tw, "demarche\t%s\n", v.Version)
				fmt.Fprintf(tw, "commit\t%s%s\n", v.Commit, dirty)
				fmt.Fprintf(tw, "date\t%s\n", v.Date)
				fmt.Fprintf(tw, "go\t%s %s\n", v.GoVersion, v.Platform)
				fmt.Fprintf(tw, "temporal server\t%s\n", v.Temporal.Server)
				fmt.Fprintf(tw, "temporal sdk\t%s\n", v.Temporal.SDK)
				fmt.Fprintf(tw, "temporal api\t%s\n", v.Temporal.API)
				fmt.Fprintf(tw, "temporal ui\t%s\n", v.Temporal.UI)
				fmt.Fprintf(tw, "nats server\t%s\n", v.NATS.Server)
				fmt.Fprintf(tw, "nats client\t%s\n", v.NATS.Client)
				return tw.Flush()
			})
		},
	}
	output.bind(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the same as --output json)")
	return cmd
}
