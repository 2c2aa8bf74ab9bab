package bench

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// busy spins until this process has used d more CPU time (not wall time:
// a loaded machine still yields samples).
func busy(d time.Duration) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // RUSAGE_SELF does not fail on Linux
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	end := cpu() + d
	x := 0
	for cpu() < end {
		for i := range 100000 {
			x += i * i
		}
	}
	_ = x // the loop's work, kept so it is not optimised away
}

// TestServiceProfilesAreChunksMerged: a service's CPU profile is read in
// consecutive chunks from the scenario's start until its end and merged
// into <scenario>.<service>.cpu.pprof; a service out of reach is a note,
// and the other's profile is still written.
func TestServiceProfilesAreChunksMerged(t *testing.T) {
	var served atomic.Int32
	chunkDone := make(chan struct{}, 100)
	// A process's /debug/pprof/profile: a real CPU profile of busy work,
	// each chunk's samples labelled with the chunk's number.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof/profile" {
			http.NotFound(w, r)
			return
		}
		if secs, err := strconv.Atoi(r.URL.Query().Get("seconds")); err != nil || secs < 1 {
			http.Error(w, "seconds: "+r.URL.Query().Get("seconds"), http.StatusBadRequest)
			return
		}
		n := served.Add(1)
		if err := pprof.StartCPUProfile(w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		pprof.Do(r.Context(), pprof.Labels("chunk", strconv.Itoa(int(n))), func(context.Context) { busy(300 * time.Millisecond) })
		pprof.StopCPUProfile()
		chunkDone <- struct{}{}
	}))
	defer srv.Close()
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}

	targets, err := parseServicePprof([]string{"worker=" + strings.TrimPrefix(srv.URL, "http://"), "gone=" + gone})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp := newServiceProfiler(targets)
	sp.chunk = time.Second
	stop := sp.start(context.Background(), dir, "open")
	<-chunkDone // the scenario lasts two chunks at least
	<-chunkDone
	notes := stop()

	if len(notes) != 1 || !strings.HasPrefix(notes[0], "gone: ") {
		t.Errorf("notes = %q, want one about gone", notes)
	}
	if _, err := os.Stat(filepath.Join(dir, "open.gone.cpu.pprof")); !os.IsNotExist(err) {
		t.Errorf("a profile of the unreachable service: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "open.worker.cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("merged profile does not parse: %v", err)
	}
	chunks := map[string]bool{}
	for _, s := range p.Sample {
		for _, c := range s.Label["chunk"] {
			chunks[c] = true
		}
	}
	if len(chunks) < 2 || int32(len(chunks)) > served.Load() {
		t.Errorf("samples from chunks %v, want from 2 or more of the %d served", chunks, served.Load())
	}
	if len(p.SampleType) == 0 || p.SampleType[len(p.SampleType)-1].Type != "cpu" {
		t.Errorf("sample types %v, want a CPU profile", p.SampleType)
	}
}

// TestServicePprofFlag: NAME=HOST:PORT, each name once.
func TestServicePprofFlag(t *testing.T) {
	got, err := parseServicePprof([]string{"worker=127.0.0.1:6061", " temporal=localhost:6070"})
	if err != nil || len(got) != 2 || got[1] != (ServicePprof{Name: "temporal", Addr: "localhost:6070"}) {
		t.Errorf("parse = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"worker"}, {"=127.0.0.1:1"}, {"worker=127.0.0.1"}, {"a/b=127.0.0.1:1"}, {"w=127.0.0.1:1", "w=127.0.0.1:2"}} {
		if _, err := parseServicePprof(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
