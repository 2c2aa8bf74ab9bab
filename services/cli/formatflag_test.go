package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/demarche/demarche/services/earlywarning"
)

// TestEveryFormatFlagAsksTheRegistry walks every command of `demarche`: each
// one with a --format flag names every registered signal format in its
// synopsis, its long help (with the format's own description) and its flag's
// help; refuses an unknown format naming it and the allowed ones, and a
// missing one, before touching any file; and takes a registered name in any
// case. A command that checked formats by hand, or lacked one, fails here.
func TestEveryFormatFlagAsksTheRegistry(t *testing.T) {
	t.Parallel()
	formats := earlywarning.Formats()
	if len(formats) < 2 {
		t.Fatalf("registered formats %v, want acled and ucdp at least", formats)
	}
	allowed := "(allowed: " + strings.Join(formats, ", ") + ")"
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if fl := c.LocalFlags().Lookup("format"); fl != nil && strings.HasPrefix(fl.Usage, "file format:") {
			paths = append(paths, path)
			for _, name := range formats {
				f, err := earlywarning.LookupFormat(earlywarning.Format(name))
				if err != nil {
					t.Fatal(err)
				}
				doc := strings.Join(strings.Fields(f.Doc()), " ")
				if !strings.Contains(c.Use, name) || !strings.Contains(fl.Usage, name) ||
					!strings.Contains(strings.Join(strings.Fields(c.Long), " "), name+": "+doc) {
					t.Errorf("%s: the synopsis %q, the flag's help %q or the long help does not name %s and describe it",
						strings.Join(path, " "), c.Use, fl.Usage, name)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(NewRoot(), nil)
	want := map[string]bool{"warning import": false, "warning rules test": false, "warning backtest": false, "warning evaluate": false, "exercise start": false}
	for _, p := range paths {
		want[strings.Join(p, " ")] = true
	}
	for path, found := range want {
		if !found {
			t.Errorf("%s has no registry --format flag (found: %v)", path, paths)
		}
	}

	run := func(args ...string) error {
		var out bytes.Buffer
		app := &App{Log: zap.NewNop(), Out: &out}
		var cmd *cobra.Command
		switch args[0] {
		case "warning":
			cmd = newWarningCmd(app)
		case "exercise":
			cmd = newExerciseCmd(app)
		}
		cmd.SetArgs(args[1:])
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		return cmd.ExecuteContext(context.Background())
	}
	missing := filepath.Join(t.TempDir(), "no-such-file.csv")
	// Without --format, a file whose header a format detects is still
	// refused; the error says which format it looks like.
	sample := filepath.Join(t.TempDir(), "events.csv")
	if err := os.WriteFile(sample, []byte("event_id_cnty,event_date,event_type,country,fatalities\nGIN1,2023-02-16,Battles,Guinea,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run("warning", "rules", "test", sample); err == nil || !strings.Contains(err.Error(), "--format: is required "+allowed+"; "+sample+" looks like acled (--format acled)") {
		t.Errorf("rules test without --format: %v, want it refused, saying the file looks like acled", err)
	}
	for path := range want {
		args := strings.Fields(path)
		if args[len(args)-1] == "import" || args[len(args)-1] == "test" {
			args = append(args, missing)
		} else {
			args = append(args, "--file", missing)
		}
		t.Run(path, func(t *testing.T) {
			err := run(append(args, "--format", "gdelt")...)
			if err == nil || !strings.Contains(err.Error(), `--format: unknown file format "gdelt" `+allowed) {
				t.Errorf("--format gdelt: %v, want it refused naming gdelt and %s", err, allowed)
			}
			err = run(args...)
			if err == nil || !strings.Contains(err.Error(), "--format: is required "+allowed) {
				t.Errorf("no --format: %v, want it required, naming %s", err, allowed)
			}
			for _, name := range formats {
				err = run(append(args, "--format", strings.ToUpper(name))...)
				if err == nil || strings.Contains(err.Error(), "--format") || !strings.Contains(err.Error(), "no-such-file.csv") {
					t.Errorf("--format %s: %v, want the format taken and the missing file refused", strings.ToUpper(name), err)
				}
			}
		})
	}
}
