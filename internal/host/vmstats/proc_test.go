package vmstats

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/poll"
)

func TestParseStat(t *testing.T) {
	// The fields after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime(14) stime(15) cutime cstime
	// priority nice threads itrealvalue starttime(22) vsize ...
	tail := " S 1 2 3 0 -1 4194560 10 0 0 0 150 50 7 7 20 0 3 0 123456 1000 ..."
	tests := []struct {
		name    string
		line    string
		want    procSample
		wantErr string
	}{
		{"qemu", "4242 (qemu-system-x86)" + tail, procSample{cpuTicks: 200, startTime: 123456}, ""},
		{"name with spaces and parens", "4242 (a) (b c)" + tail, procSample{cpuTicks: 200, startTime: 123456}, ""},
		{"zombie", "4242 (qemu) Z 1 2 3 0 -1 0 0 0 0 0 150 50 0 0 20 0 1 0 123456 0", procSample{}, "zombie"},
		{"too short", "4242 (qemu) S 1 2 3", procSample{}, "fields"},
		{"no name", "4242 qemu S", procSample{}, "format"},
		{"garbage utime", "4242 (qemu) S 1 2 3 0 -1 0 0 0 0 0 x 50 0 0 20 0 1 0 123456 0", procSample{}, "field 14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// The tracker's arithmetic: readings are (ticks, seconds since boot) of
// a process that started at second 100.
func TestCPUTracker(t *testing.T) {
	type reading struct {
		ticks uint64
		now   float64
		want  float64
	}
	tests := []struct {
		name     string
		readings []reading
	}{
		{"first reading is the average since start", []reading{{ticks: 500, now: 110, want: 50}}},
		{"then the use since the previous reading", []reading{{500, 110, 50}, {700, 112, 100}, {700, 114, 0}}},
		{"two cores busy", []reading{{0, 100.5, 0}, {400, 102.5, 200}}},
		{"first reading too soon after start", []reading{{10, 100.2, -1}, {60, 101, 60}}},
		{"reading too soon repeats the figure", []reading{{500, 110, 50}, {530, 110.1, 50}, {900, 112, 200}}},
		{"CPU time going back starts over", []reading{{500, 110, 50}, {400, 111, -1}, {500, 112, 100}}},
		{"a process unseen for long is forgotten", []reading{{500, 110, 50}, {100000, 110 + 2*3600, 100000.0 / 100 / (2*3600 + 10) * 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c cpuTracker
			for i, r := range tt.readings {
				got := c.observe(procKey{pid: 7, start: 100 * userHZ}, r.ticks, r.now, 100)
				if diff := got - r.want; diff > 1e-9 || diff < -1e-9 {
					t.Errorf("reading %d (%d ticks at %gs) = %g%%, want %g%%", i, r.ticks, r.now, got, r.want)
				}
			}
		})
	}
	// Another process (a reused PID has another start time) has its own
	// baseline.
	var c cpuTracker
	c.observe(procKey{7, 100 * userHZ}, 500, 110, 100)
	if got := c.observe(procKey{7, 105 * userHZ}, 100, 110, 105); got != 20 {
		t.Errorf("a new process at a reused pid = %g%%, want its own average 20%%", got)
	}
}

// spawn starts the shell script in a child process ended with the test.
func spawn(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// target names a real process the way the daemon names a hypervisor.
func target(t *testing.T, pid int) Target {
	t.Helper()
	p, err := readProc("/proc", pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	return Target{Name: "vm", PID: pid, StartTime: p.startTime}
}

// A child that burns CPU shows CPU use once it has run; one that sleeps
// shows next to none; both have resident memory.
func TestSampleRealProcesses(t *testing.T) {
	busy := spawn(t, "while :; do :; done")
	idle := spawn(t, "exec sleep 1000")
	var s Sampler
	ctx := context.Background()
	tb, ti := target(t, busy.Process.Pid), target(t, idle.Process.Pid)
	s.Sample(ctx, tb)
	s.Sample(ctx, ti)
	first, _ := readProc("/proc", tb.PID, tb.StartTime)
	// Wait until the busy child has used 60 ticks more: a single thread
	// cannot do that in less than 0.6s, so the next window is longer than
	// MinWindow.
	err := poll.Until(ctx, 50*time.Millisecond, func() (bool, error) {
		p, err := readProc("/proc", tb.PID, tb.StartTime)
		return err == nil && p.cpuTicks >= first.cpuTicks+60, err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, i := s.Sample(ctx, tb), s.Sample(ctx, ti)
	if b.CPUPercent <= 0 || b.CPUPercent > 110 {
		t.Errorf("busy child: CPU %g%%, want a busy single thread (0 < cpu <= 110)", b.CPUPercent)
	}
	if i.CPUPercent < 0 || i.CPUPercent >= 10 {
		t.Errorf("sleeping child: CPU %g%%, want next to none", i.CPUPercent)
	}
	for _, st := range []struct {
		name string
		rss  int64
	}{{"busy", b.HostRSSBytes}, {"idle", i.HostRSSBytes}} {
		if st.rss <= 0 {
			t.Errorf("%s child: RSS %d, want > 0", st.name, st.rss)
		}
	}
}

// The test process's own RSS agrees with statm (resident pages).
func TestRSSOfSelf(t *testing.T) {
	st := new(Sampler).Sample(context.Background(), target(t, os.Getpid()))
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		t.Fatal(err)
	}
	want := resident * int64(os.Getpagesize())
	if st.HostRSSBytes < want/2 || st.HostRSSBytes > want*2 {
		t.Errorf("RSS %d bytes, statm says %d", st.HostRSSBytes, want)
	}
}

// A process that is not the VM's (another start time at its PID), or no
// process at all, leaves the host figures unknown instead of reading a
// stranger.
func TestSampleNotOurProcess(t *testing.T) {
	self := target(t, os.Getpid())
	tests := []struct {
		name string
		t    Target
	}{
		{"pid reused", Target{Name: "vm", PID: self.PID, StartTime: self.StartTime + 1}},
		{"no such process", Target{Name: "vm", PID: 1 << 30, StartTime: 1}},
		{"no pid", Target{Name: "vm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := new(Sampler).Sample(context.Background(), tt.t)
			if st.CPUPercent != -1 || st.HostRSSBytes != 0 {
				t.Errorf("CPU %g%%, RSS %d; want -1 and 0", st.CPUPercent, st.HostRSSBytes)
			}
			if st.VM != "vm" || st.Time.IsZero() || st.Disks == nil {
				t.Errorf("stats %+v: want the name, a time and an empty disk list", st)
			}
		})
	}
}
