package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ServicePID is a process of the deployment on this machine whose CPU time
// the bench reads from /proc around each measured run, with its
// descendants' (PostgreSQL serves each connection from a child process):
// on one machine every process of a cluster shares the same cores, and
// what a run costs each of them, per operation, says which one bounds it.
type ServicePID struct {
	// Name names the process in bench.json (cpu_ms_per_op) and the table.
	Name string
	PID  int
}

// parseServicePIDs reads --service-pid values, NAME=PID each.
func parseServicePIDs(values []string) ([]ServicePID, error) {
	return parseNamed(values, "--service-pid", "NAME=PID, a process of this machine (e.g. postgres=4242)", func(name, pid string) (ServicePID, error) {
		n, err := strconv.Atoi(pid)
		switch {
		case err != nil || n <= 0:
			return ServicePID{}, errors.New("a PID is a positive number")
		case name == selfCPU:
			return ServicePID{}, fmt.Errorf("%s names the bench's own process", selfCPU)
		}
		return ServicePID{Name: name, PID: n}, nil
	})
}

// selfCPU names the bench's own process in every CPU reading.
const selfCPU = "bench"

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports (the kernel reports in it whatever its
// internal HZ).
const clockTicks = 100

// cpuMeter reads the CPU time of the named processes (and of the bench).
type cpuMeter struct {
	procs []ServicePID
	proc  string // /proc, a fake in tests
}

func newCPUMeter(procs []ServicePID) *cpuMeter {
	if len(procs) == 0 {
		return nil
	}
	return &cpuMeter{procs: append([]ServicePID{{Name: selfCPU, PID: os.Getpid()}}, procs...), proc: "/proc"}
}

// cpuReading is the CPU time of each process tree at one moment.
type cpuReading map[string]time.Duration

// read sums user and system time of each named process, of its live
// descendants (but those named themselves) and of its reaped children. A
// process gone is left out.
func (m *cpuMeter) read() cpuReading {
	type stat struct {
		ppid       int
		self, dead time.Duration
	}
	all := map[int]stat{}
	entries, _ := os.ReadDir(m.proc) // unreadable: every process counts 0, the run still stands
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.proc, e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17):
		// comm may hold spaces and parentheses, so fields count from the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 15 {
			continue
		}
		num := func(k int) time.Duration {
			v, _ := strconv.ParseInt(f[k], 10, 64) // the kernel writes numbers: 0 if not
			return time.Duration(v) * time.Second / clockTicks
		}
		ppid, _ := strconv.Atoi(f[1]) // the kernel writes numbers
		// f[0] is field 3 (state): field N is f[N-3].
		all[pid] = stat{ppid: ppid, self: num(11) + num(12), dead: num(13) + num(14)}
	}
	children := map[int][]int{}
	for pid, s := range all {
		children[s.ppid] = append(children[s.ppid], pid)
	}
	// A named process below another (the bench's own children) counts
	// under its own name alone.
	named := map[int]bool{}
	for _, p := range m.procs {
		named[p.PID] = true
	}
	out := cpuReading{}
	for _, p := range m.procs {
		root, ok := all[p.PID]
		if !ok {
			continue
		}
		total := root.dead
		for stack := []int{p.PID}; len(stack) > 0; {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			total += all[pid].self
			for _, c := range children[pid] {
				if !named[c] {
					stack = append(stack, c)
				}
			}
		}
		out[p.Name] = total
	}
	return out
}

// start takes a reading; the returned func gives each process's CPU
// milliseconds per operation since, for ops operations (nil when there is
// nothing to say: no processes named, no operation done).
func (m *cpuMeter) start() func(ops int) map[string]float64 {
	if m == nil {
		return func(int) map[string]float64 { return nil }
	}
	before := m.read()
	return func(ops int) map[string]float64 {
		if ops <= 0 {
			return nil
		}
		after := m.read()
		out := map[string]float64{}
		var total time.Duration
		for name, t := range after {
			d := t - before[name]
			if _, ok := before[name]; !ok || d < 0 {
				continue // started or restarted meanwhile: not this run's figure
			}
			total += d
			out[name] = float64(d) / float64(time.Millisecond) / float64(ops)
		}
		out[cpuTotal] = float64(total) / float64(time.Millisecond) / float64(ops)
		return out
	}
}

// cpuTotal is the sum over every process read, in cpu_ms_per_op.
const cpuTotal = "total"
