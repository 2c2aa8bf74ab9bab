package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"
)

// ServicePprof is a process of the deployment whose Go /debug/pprof/ the
// bench reads (`demarche serve --pprof-listen`, `demarche temporal-server
// --pprof-listen`): against a deployment the services run in processes of
// their own, which the bench's own CPU profile does not see.
type ServicePprof struct {
	// Name names the profile file (<scenario>.<Name>.cpu.pprof).
	Name string
	// Addr is HOST:PORT of its /debug/pprof/.
	Addr string
}

// parseServicePprof reads --service-pprof values, NAME=HOST:PORT each.
func parseServicePprof(values []string) ([]ServicePprof, error) {
	return parseNamed(values, "--service-pprof", "NAME=HOST:PORT (e.g. worker=127.0.0.1:6061)", func(name, addr string) (ServicePprof, error) {
		if strings.ContainsAny(name, `/\ `) {
			return ServicePprof{}, errors.New("a name names a file: no /, \\ or space")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return ServicePprof{}, err
		}
		return ServicePprof{Name: name, Addr: addr}, nil
	})
}

// parseNamed reads a repeatable flag's NAME=VALUE values, each name once,
// with parse making one item of a name and its value.
func parseNamed[T any](values []string, flag, want string, parse func(name, value string) (T, error)) ([]T, error) {
	var out []T
	seen := map[string]bool{}
	for _, v := range values {
		name, value, ok := strings.Cut(strings.TrimSpace(v), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s %q: want %s", flag, v, want)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s: %s given twice", flag, name)
		}
		seen[name] = true
		item, err := parse(name, value)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want %s: %w", flag, v, want, err)
		}
		out = append(out, item)
	}
	return out, nil
}

// serviceProfiler collects CPU profiles of other processes over HTTP.
// A process profiles only as long as one request asks, so a scenario is
// covered by consecutive chunks (/debug/pprof/profile?seconds=N), merged
// into one profile when it ends.
type serviceProfiler struct {
	targets []ServicePprof
	// chunk is the length of one request's profile; the last chunk runs
	// to its end after the scenario (a cancelled request returns nothing),
	// so it bounds what a scenario's end waits and the idle tail in the
	// profile (5 s: with 10 s, a 10 s scenario was profiled for 20 s).
	chunk  time.Duration
	client *http.Client
}

func newServiceProfiler(targets []ServicePprof) *serviceProfiler {
	return &serviceProfiler{targets: targets, chunk: 5 * time.Second, client: &http.Client{}}
}

// start begins profiling every target for the scenario name; stop waits
// for each target's last chunk, writes <dir>/<name>.<service>.cpu.pprof and
// returns notes (a target that could not be profiled, a file not written):
// a process out of reach is a note, never the bench's failure.
func (sp *serviceProfiler) start(ctx context.Context, dir, name string) (stop func() []string) {
	if sp == nil || len(sp.targets) == 0 {
		return func() []string { return nil }
	}
	done := make(chan struct{})
	notes := make([][]string, len(sp.targets))
	var wg sync.WaitGroup
	for i, t := range sp.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notes[i] = sp.collect(ctx, done, t, filepath.Join(dir, name+"."+t.Name+".cpu.pprof"))
		}()
	}
	return func() []string {
		close(done)
		wg.Wait()
		var all []string
		for _, n := range notes {
			all = append(all, n...)
		}
		return all
	}
}

// collect fetches chunks of t's CPU profile until done is closed (the
// chunk in flight then finishes), merges them and writes path.
func (sp *serviceProfiler) collect(ctx context.Context, done <-chan struct{}, t ServicePprof, path string) []string {
	var chunks []*profile.Profile
	var notes []string
	for {
		p, err := sp.fetch(ctx, t)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: CPU profile from %s stopped after %d chunk(s): %v", t.Name, t.Addr, len(chunks), err))
			break
		}
		chunks = append(chunks, p)
		select {
		case <-done:
		default:
			continue
		}
		break
	}
	if len(chunks) == 0 {
		return notes
	}
	merged, err := profile.Merge(chunks)
	if err != nil {
		return append(notes, fmt.Sprintf("%s: CPU profile chunks not merged: %v", t.Name, err))
	}
	if err := writeProfile(merged, path); err != nil {
		return append(notes, fmt.Sprintf("%s: CPU profile not written: %v", t.Name, err))
	}
	return notes
}

// fetch is one chunk of t's CPU profile.
func (sp *serviceProfiler) fetch(ctx context.Context, t ServicePprof) (*profile.Profile, error) {
	secs := max(1, int(sp.chunk.Round(time.Second)/time.Second))
	// The process answers after secs; a slow answer beyond that is bounded.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.Addr, secs), nil)
	if err != nil {
		return nil, err
	}
	resp, err := sp.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // the error's text, if any: the status is the error
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	p, err := profile.Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("not a profile: %w", err)
	}
	return p, nil
}

func writeProfile(p *profile.Profile, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(p.Write(f), f.Close())
}
