package hypervisor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcessStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks since boot), or an error when the process does not exist.
func ProcessStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	if string(fields[0]) == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// Alive reports whether the process at h.PID is the one h recorded.
func Alive(h Handle) bool {
	if h.PID <= 0 {
		return false
	}
	st, err := ProcessStartTime(h.PID)
	return err == nil && st == h.StartTime
}
