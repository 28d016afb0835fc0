package hypervisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// statFields returns the fields of /proc/PID/stat from field 3 (state)
// on: the command name (field 2) may hold spaces and parentheses, so they
// start after the last ')'.
func statFields(pid int) ([][]byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return fields, nil
}

// ProcessStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks since boot), or an error when the process does not exist.
func ProcessStartTime(pid int) (uint64, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if string(fields[0]) == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// ProcessCPUTicks returns the CPU time process pid has used, user and
// system (fields 14 and 15 of /proc/PID/stat), in clock ticks.
func ProcessCPUTicks(pid int) (uint64, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	utime, err := strconv.ParseUint(string(fields[11]), 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseUint(string(fields[12]), 10, 64)
	if err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// Alive reports whether the process at h.PID is the one h recorded.
func Alive(h Handle) bool {
	if h.PID <= 0 {
		return false
	}
	st, err := ProcessStartTime(h.PID)
	return err == nil && st == h.StartTime
}

// KillGroup sends SIGKILL to the process group led by pid (hypervisors run
// in their own session), or to pid alone when it leads no group.
func KillGroup(pid int) {
	if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
		unix.Kill(-pid, unix.SIGKILL)
		return
	}
	unix.Kill(pid, unix.SIGKILL)
}

// WaitGone polls until h's process is gone (or a zombie) or ctx ends, and
// reports whether it is gone.
func WaitGone(ctx context.Context, h Handle) bool {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for Alive(h) {
		select {
		case <-ctx.Done():
			return !Alive(h)
		case <-t.C:
		}
	}
	return true
}
