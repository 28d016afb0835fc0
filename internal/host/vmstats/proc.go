package vmstats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of the CPU times and start time in /proc/PID/stat
// (USER_HZ, sysconf(_SC_CLK_TCK)): 100 on every architecture Go runs
// Linux on.
const userHZ = 100

// procSample is what one read of /proc/PID tells.
type procSample struct {
	cpuTicks  uint64  // utime + stime
	startTime uint64  // ticks since boot
	rssBytes  int64   // VmRSS
	now       float64 // seconds since boot when it was read
}

func (p procSample) startSeconds() float64 { return float64(p.startTime) / userHZ }

// readProc reads the process pid under the proc filesystem root: its CPU
// time and start time (stat) and its resident memory (status). A process
// whose start time is not wantStart (when non-zero) is another process
// that reused the PID.
func readProc(root string, pid int, wantStart uint64) (procSample, error) {
	if pid <= 0 {
		return procSample{}, fmt.Errorf("no process id")
	}
	dir := filepath.Join(root, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procSample{}, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return procSample{}, fmt.Errorf("reading the boot clock: %w", err)
	}
	p, err := parseStat(b)
	if err != nil {
		return procSample{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	p.now = float64(ts.Nano()) / float64(time.Second)
	if wantStart != 0 && p.startTime != wantStart {
		return procSample{}, fmt.Errorf("process %d started at tick %d, not %d: it is not the VM's hypervisor", pid, p.startTime, wantStart)
	}
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return procSample{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) != 2 || fields[1] != "kB" {
				return procSample{}, fmt.Errorf("%s/status: unexpected VmRSS line %q", dir, sc.Text())
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return procSample{}, fmt.Errorf("%s/status: VmRSS: %w", dir, err)
			}
			p.rssBytes = kb << 10
			break
		}
	}
	return p, sc.Err()
}

// parseStat reads utime, stime (fields 14, 15) and starttime (22) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStat(b []byte) (procSample, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("unexpected format")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return procSample{}, fmt.Errorf("%d fields after the command name, want at least 20", len(f))
	}
	if string(f[0]) == "Z" {
		return procSample{}, fmt.Errorf("the process is a zombie")
	}
	var n [3]uint64
	for j, field := range []int{14, 15, 22} {
		v, err := strconv.ParseUint(string(f[field-3]), 10, 64)
		if err != nil {
			return procSample{}, fmt.Errorf("field %d: %w", field, err)
		}
		n[j] = v
	}
	return procSample{cpuTicks: n[0] + n[1], startTime: n[2]}, nil
}

// procKey names one process for good: a reused PID has another start
// time.
type procKey struct {
	pid   int
	start uint64
}

// cpuSample is the last CPU reading of a process and the figure it gave.
type cpuSample struct {
	ticks   uint64
	at      float64 // seconds since boot
	percent float64
}

// forgetAfter: a process not sampled for this long is forgotten (it has
// most likely exited); its next sample, if any, measures from its start.
const forgetAfter = time.Hour

// cpuTracker turns CPU time readings into CPU % since the previous one.
type cpuTracker struct {
	mu   sync.Mutex
	last map[procKey]cpuSample
}

// observe records ticks (utime+stime) of process k read at now (seconds
// since boot) and returns its CPU % since the previous reading, or since
// it started at started (seconds since boot) for the first one. It
// returns -1 when the first window is shorter than MinWindow, and repeats
// the previous figure when the new window is.
func (c *cpuTracker) observe(k procKey, ticks uint64, now, started float64) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[procKey]cpuSample{}
	}
	for key, s := range c.last {
		if now-s.at > forgetAfter.Seconds() {
			delete(c.last, key)
		}
	}
	prev, seen := c.last[k]
	if !seen {
		prev = cpuSample{at: started, percent: -1}
	}
	window := now - prev.at
	switch {
	case window < MinWindow.Seconds():
		return prev.percent
	case ticks < prev.ticks: // a process's CPU time never goes back: start over
		c.last[k] = cpuSample{ticks: ticks, at: now, percent: -1}
		return -1
	}
	pct := float64(ticks-prev.ticks) / userHZ / window * 100
	c.last[k] = cpuSample{ticks: ticks, at: now, percent: pct}
	return pct
}
