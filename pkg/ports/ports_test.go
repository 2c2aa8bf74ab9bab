package ports

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestFreeStaysOutOfTheEphemeralRange(t *testing.T) {
	high := ephemeralLow()
	if high-pickLow < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it", high)
	}
	seen := map[int]bool{}
	for range 50 {
		p, err := Free("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < pickLow || p >= high {
			t.Fatalf("port %d: want within [%d, %d), outside the range outgoing connections take", p, pickLow, high)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d was returned as free but cannot be bound: %v", p, err)
		}
		_ = l.Close()
		seen[p] = true
	}
	if len(seen) < 40 {
		t.Fatalf("%d distinct ports in 50 picks: the pick is not spread", len(seen))
	}
}

func TestCheckOrPickRefusesATakenPortNamingTheFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	_, err = CheckOrPick("127.0.0.1", p, "--nats-port")
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("taken port %d: %v, want ErrInUse", p, err)
	}
	if want := "--nats-port"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}

// A server picks several ports before it binds any: Free must not return
// one twice in a process (seen: Temporal's worker service and another of its
// services given the same port, "address already in use").
func TestFreeNeverReturnsAPortTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 2000 {
		p, err := Free("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d returned twice (after %d picks)", p, len(seen))
		}
		seen[p] = true
	}
}
