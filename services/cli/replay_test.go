package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestAuditReplayDirAndJSON(t *testing.T) {
	app := &App{Log: zap.NewNop()}
	var out, errOut bytes.Buffer
	app.Out = &out
	cmd := newAuditReplayCmd(app)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--dir", "../../workflows/crisis/testdata"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("replay --dir: %v\n%s", err, out.String())
	}
	files, _ := filepath.Glob("../../workflows/crisis/testdata/*.json")
	n := fmt.Sprint(len(files))
	if len(files) < 6 || !strings.Contains(out.String(), n+" of "+n+" histories replay deterministically") || !strings.Contains(errOut.String(), "[##############################] "+n+"/"+n) {
		t.Fatalf("summary or progress missing:\n%s\n%s", out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "[four-eyes]") && !strings.Contains(out.String(), "[funding-decision] by drill-approver (drill policy)") {
		t.Fatalf("trail lacks the funding decision with its principal:\n%s", out.String())
	}

	out.Reset()
	cmd = newAuditReplayCmd(app)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--file", "../../workflows/crisis/testdata/EnvoyDeployment.json", "--output", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var res []replayed
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out.String())
	}
	if len(res) != 1 || !res[0].Deterministic || res[0].Events == 0 || len(res[0].Trail) == 0 {
		t.Fatalf("json result: %+v", res)
	}

	cmd = newAuditReplayCmd(app)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--output", "yaml", "--dir", "x"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("bad --output: %v", err)
	}
}
