// Package ports checks and picks TCP ports for the servers Démarche embeds.
package ports

import (
	"errors"
	"fmt"
	"net"
	"strconv"
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

// Free returns a port that was free a moment ago.
func Free(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CheckOrPick checks a configured port, or picks a free one when port is 0.
func CheckOrPick(host string, port int, flag string) (int, error) {
	if port == 0 {
		return Free(host)
	}
	return port, CheckFree(host, port, flag)
}
