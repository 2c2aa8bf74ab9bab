package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	historypb "go.temporal.io/api/history/v1"

	"github.com/demarche/demarche/pkg/payloadcodec"
	"github.com/demarche/demarche/workflows/trail"
)

// replayed is one history's result, as `audit replay --output json` prints it.
type replayed struct {
	Workflow      string        `json:"workflow"`
	Source        string        `json:"source"`
	Events        int           `json:"events"`
	Deterministic bool          `json:"deterministic"`
	Error         string        `json:"error,omitempty"`
	Trail         []trail.Entry `json:"trail"`
}

// newAuditReplayCmd is `demarche audit replay` (added by newAuditCmd).
func newAuditReplayCmd(app *App) *cobra.Command {
	var crisisID, dir string
	var output outputFlag
	var files []string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay workflow histories against today's code and print their decision trail",
		Long: `Replay workflow histories with the current workflow code (Temporal's replayer)
and report, per history, whether it replays deterministically; then print the
decision trail rebuilt from the history alone: who decided what, when, under
which rule, with which rationale; what deadline fired; what money moved.

Histories come from the server (--crisis: the crisis and its stage workflows),
from files exported by the standard Temporal tooling ("temporal workflow show
--output json") or by this platform (--file, repeatable), or from a folder of
them (--dir, with progress). The exit code is non-zero when any history does
not replay.

Histories of a cluster whose payloads are encrypted (payload codec) replay
with the key that encrypted them: --codec-key, or --codec-old-key for a key
rotated out. Without it the command refuses, naming the missing key id.`,
		Example: `  demarche audit replay --crisis GN-20261127-K7Q3P
  demarche audit replay --file history.json --output json
  demarche audit replay --dir workflows/crisis/testdata
  demarche audit replay --file exported.json --codec-old-key keys/2025.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := output.json()
			if err != nil {
				return err
			}
			var results []replayed
			run := func(id, source string, h *historypb.History) {
				r := replayed{Workflow: id, Source: source, Events: len(h.GetEvents()), Deterministic: true}
				if err := trail.Replay(h); err != nil {
					r.Deterministic, r.Error = false, err.Error()
				}
				r.Trail, _ = trail.FromHistory(id, h) // a history the trail cannot read still replays: its trail is left out
				results = append(results, r)
			}
			switch {
			case crisisID != "":
				hs, err := app.histories(cmd.Context(), crisisID)
				if err != nil {
					return err
				}
				// Each workflow's runs come latest first; label them oldest first.
				runs := map[string]int{}
				for _, h := range hs {
					runs[h.WorkflowID]++
				}
				seen := map[string]int{}
				for _, h := range hs {
					if err := app.decrypt(cmd.Context(), "crisis "+crisisID+": history of "+h.WorkflowID, h.History); err != nil {
						return err
					}
				}
				for _, h := range hs {
					label := h.WorkflowID
					if n := runs[h.WorkflowID]; n > 1 {
						label = fmt.Sprintf("%s (run %d of %d)", h.WorkflowID, n-seen[h.WorkflowID], n)
					}
					seen[h.WorkflowID]++
					run(label, "server", h.History)
				}
			case len(files) > 0 || dir != "":
				if dir != "" {
					found, err := filepath.Glob(filepath.Join(dir, "*.json"))
					if err != nil {
						return err
					}
					if len(found) == 0 {
						return fmt.Errorf("--dir %s: no *.json history files", dir)
					}
					sort.Strings(found)
					files = append(files, found...)
				}
				for i, f := range files {
					if dir != "" && !asJSON {
						fmt.Fprintf(cmd.ErrOrStderr(), "\r%s %d/%d %s", progressBar(i+1, len(files), 30), i+1, len(files), filepath.Base(f))
					}
					h, err := trail.LoadFile(f)
					if err != nil {
						return err
					}
					if err := app.decrypt(cmd.Context(), f, h); err != nil {
						return err
					}
					id := filepath.Base(f)
					if evs := h.GetEvents(); len(evs) > 0 {
						id = evs[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName() + " (" + id + ")"
					}
					run(id, f, h)
				}
				if dir != "" && !asJSON {
					fmt.Fprintln(cmd.ErrOrStderr())
				}
			default:
				return fmt.Errorf("say which histories: --crisis ID, --file FILE or --dir DIR")
			}
			failed := 0
			for _, r := range results {
				if !r.Deterministic {
					failed++
				}
			}
			if asJSON {
				enc := json.NewEncoder(app.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					status := "replays deterministically"
					if !r.Deterministic {
						status = "DOES NOT REPLAY: " + r.Error
					}
					fmt.Fprintf(app.Out, "%s (%d events): %s\n", r.Workflow, r.Events, status)
					for _, e := range r.Trail {
						who := ""
						if e.Principal != "" {
							who = " by " + e.Principal
						}
						why := ""
						if e.Rationale != "" {
							why = " — " + e.Rationale
						}
						rule := ""
						if e.Rule != "" {
							rule = " [" + e.Rule + "]"
						}
						fmt.Fprintf(app.Out, "  %s  %-8s %s%s%s%s\n", e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Kind, e.What, rule, who, why)
					}
				}
				fmt.Fprintf(app.Out, "%d of %d histories replay deterministically\n", len(results)-failed, len(results))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d histories do not replay on this code", failed, len(results))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&crisisID, "crisis", "", "fetch and replay this crisis and its stage workflows from the server")
	cmd.Flags().StringArrayVar(&files, "file", nil, "a history JSON file (repeatable)")
	cmd.Flags().StringVar(&dir, "dir", "", "every *.json history in this folder")
	output.bind(cmd)
	return cmd
}

func progressBar(done, total, width int) string {
	n := done * width / max(total, 1)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// decrypt decrypts a history's payloads in place with the process's codec
// keys; a history that needs a key this process lacks is refused, naming it
// (an encrypted history would otherwise "not replay" for no reason an
// auditor could act on).
func (a *App) decrypt(ctx context.Context, what string, h *historypb.History) error {
	if err := payloadcodec.DecodeMessage(ctx, h, a.Codec); err != nil {
		return fmt.Errorf("%s: cannot replay an encrypted history without its key: %w", what, err)
	}
	return nil
}
