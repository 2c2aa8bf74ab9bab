package stack_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axe-core (Deque, MPL-2.0) runs the accessibility rules in the browser
// test. It is fetched from the npm registry once, pinned by version and
// SHA-256, and cached beside the screenshots (testdata/artefacts, ignored by
// git): a fresh machine needs only Go and Chromium. DEMARCHE_AXE_JS names an
// axe.min.js to use instead (an offline machine).
const (
	axeVersion = "4.10.3"
	axeTarball = "https://registry.npmjs.org/axe-core/-/axe-core-" + axeVersion + ".tgz"
	axeSHA256  = "0f2b4d7dcdf7d1219df8d1959ad68e565f51d14c3f0d88bb71cd59abeb956292"
)

var (
	axeOnce sync.Once
	axeSrc  string
	axeErr  error
)

// axeScript is axe.min.js's source.
func axeScript(t *testing.T) string {
	t.Helper()
	axeOnce.Do(func() { axeSrc, axeErr = loadAxe() })
	if axeErr != nil {
		t.Fatalf("axe-core for the accessibility checks: %v (set DEMARCHE_AXE_JS to an axe.min.js on a machine without the npm registry)", axeErr)
	}
	return axeSrc
}

func loadAxe() (string, error) {
	if p := os.Getenv("DEMARCHE_AXE_JS"); p != "" {
		b, err := os.ReadFile(p)
		return string(b), err
	}
	cache := filepath.Join("testdata", "artefacts", "axe-core-"+axeVersion+".min.js")
	if b, err := os.ReadFile(cache); err == nil {
		return string(b), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, axeTarball, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", axeTarball, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s", axeTarball, resp.Status)
	}
	tgz, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return "", fmt.Errorf("download %s: %w", axeTarball, err)
	}
	if sum := sha256.Sum256(tgz); hex.EncodeToString(sum[:]) != axeSHA256 {
		return "", fmt.Errorf("%s: SHA-256 %x, want %s", axeTarball, sum, axeSHA256)
	}
	zr, err := gzip.NewReader(strings.NewReader(string(tgz)))
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return "", fmt.Errorf("%s: no package/axe.min.js: %v", axeTarball, err)
		}
		if h.Name != "package/axe.min.js" {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(filepath.Dir(cache), 0o755); err == nil {
			_ = os.WriteFile(cache, b, 0o644)
		}
		return string(b), nil
	}
}

// checkAxe runs axe-core on the page as it stands and fails the test on any
// serious or critical violation, naming the rule and the elements.
func (b browserTab) checkAxe(name string) {
	b.t.Helper()
	src := axeScript(b.t)
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	// Injected through the DevTools protocol: the console's CSP (script-src
	// 'self') binds the page's own scripts, not the test's evaluation.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](src+";true")); err != nil {
		b.t.Fatalf("%s: %s: load axe-core: %v", b.name, name, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %s: run axe-core: %v", b.name, name, err)
	}
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		b.t.Fatalf("%s: %s: axe-core's answer: %v", b.name, name, err)
	}
	var bad []string
	for _, v := range violations {
		line := fmt.Sprintf("%s (%s): %s — %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "; "))
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, line)
		} else {
			b.t.Logf("%s: %s: axe-core (%s, not failing): %s", b.name, name, v.Impact, line)
		}
	}
	if len(bad) > 0 {
		b.shot(name + "-axe-failed")
		b.t.Errorf("%s: %s: %d serious or critical accessibility violations (axe-core %s):\n%s", b.name, name, len(bad), axeVersion, strings.Join(bad, "\n"))
	}
}
