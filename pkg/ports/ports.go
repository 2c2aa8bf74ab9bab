// Package ports checks and picks TCP ports for the servers Démarche embeds.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ErrInUse is returned when a configured port is taken.
var ErrInUse = errors.New("port already in use")

// CheckFree fails with ErrInUse, naming the port and the flag that changes it,
// when host:port cannot be bound.
func CheckFree(host string, port int, flag string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		hint := ""
		if flag != "" {
			hint = fmt.Sprintf(" (choose another with %s)", flag)
		}
		return fmt.Errorf("%w: %s:%d%s: %v", ErrInUse, host, port, hint, err)
	}
	return l.Close()
}

// pickLow and pickTries bound where Free looks: from pickLow up to just
// below the kernel's ephemeral range.
const (
	pickLow   = 10000
	pickTries = 200
)

// Free returns a port that was free a moment ago.
//
// It is picked at random below the kernel's ephemeral range, not by binding
// port 0: a port the kernel hands out for ":0" comes from the same range as
// the source ports of outgoing connections, and between this check and the
// server binding it, any client on the machine may take it for a
// connection. The embedded Temporal server treats a listener it cannot bind
// as fatal and ends the process (seen in CI with the suite's packages running
// side by side), so the gap must not be shared with every dial.
func Free(host string) (int, error) {
	low, high := pickLow, ephemeralLow()-1
	if high-low < 1000 {
		return anyFree(host)
	}
	for range pickTries {
		p := low + rand.IntN(high-low+1)
		if !handOut(p) {
			continue // given to an earlier caller, which may not have bound it yet
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close() // a probe listener, nothing sent on it: closing only frees the port
		return p, nil
	}
	return anyFree(host)
}

// handedOut are the ports Free returned in this process: a server picks
// several (Temporal's four services) before binding any, and a random pick
// could otherwise return the same free port twice (the kernel's ":0" never
// does while a port is in use, but these are not in use yet).
var (
	handedMu  sync.Mutex
	handedOut = map[int]bool{}
)

// handOut records p as given out; false when it already was.
func handOut(p int) bool {
	handedMu.Lock()
	defer handedMu.Unlock()
	if handedOut[p] {
		return false
	}
	handedOut[p] = true
	return true
}

// anyFree is the kernel's choice, when no range outside the ephemeral one is
// usable.
func anyFree(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read), read once.
var ephemeralLow = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 0 {
				return n
			}
		}
	}
	return 32768
})

// CheckOrPick checks a configured port, or picks a free one when port is 0.
func CheckOrPick(host string, port int, flag string) (int, error) {
	if port == 0 {
		return Free(host)
	}
	return port, CheckFree(host, port, flag)
}
