// Package vmstats samples a running VM's resource figures (api.VMStats):
// on the host, its hypervisor process's CPU use and resident memory
// (/proc), its disk files' size and the bytes they occupy, and its TAP
// device's byte counters (netlink); from the guest, the memory its own
// kernel reports through the agent (the meminfo call), which is the
// guest's word and so is bounded and checked before it is shown.
//
// CPU % is the process's CPU time since the previous sample of the same
// process (PID and start time), divided by the time between the two; the
// Sampler keeps that previous sample in memory. The first sample of a
// process is measured from the process's start (its CPU time then was
// zero), which is its average since the VM booted: a figure from the first
// call, rather than -1 until a second one. -1 means not known: the
// process could not be read, or it started less than MinWindow ago.
package vmstats

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
)

// Target is one running VM to sample.
type Target struct {
	Name string
	// PID and StartTime (clock ticks since boot, /proc/PID/stat field 22)
	// name the hypervisor process; a process at PID with another start
	// time is not the VM's and is not read. StartTime 0 skips the check.
	PID       int
	StartTime uint64
	// MemoryMiB is the VM's configured memory: the guest reporting more
	// than twice that is not believed.
	MemoryMiB int
	// TAP is the VM's TAP device, in this process's network namespace;
	// "" when it has none.
	TAP   string
	Disks []Disk
	// Agent returns the VM's agent; nil, or an error, leaves the guest's
	// figures unknown.
	Agent func(ctx context.Context) (Caller, error)
}

// Disk is one disk file of a VM.
type Disk struct {
	Name string // rootfs, work
	Path string
}

// Caller is what the guest figures need of an agent session
// (*agentmux.Session is one).
type Caller interface {
	Call(ctx context.Context, method string, params, result any) error
}

// LinkCounters reads a network device's byte counters as the device
// counts them (rx: received by the host side of a TAP).
type LinkCounters interface {
	Counters(name string) (rx, tx uint64, err error)
}

// Defaults of the Sampler's zero fields.
const (
	DefaultGuestTimeout = 2 * time.Second
	DefaultParallel     = 16
	// MinWindow is the shortest time over which CPU % is measured: a
	// sample taken sooner after the previous one repeats its figure (the
	// kernel counts CPU time in 10ms ticks, too coarse for less).
	MinWindow = 500 * time.Millisecond
)

// Sampler samples VMs; it is safe for concurrent use. The zero value
// reads the real /proc and netlink.
type Sampler struct {
	// GuestTimeout bounds the wait for a guest's answer (and, in
	// SampleAll, for all of them): a stuck guest leaves its figures
	// unknown rather than stalling the caller.
	GuestTimeout time.Duration
	// Parallel bounds how many VMs SampleAll samples at once.
	Parallel int
	// Links reads TAP counters; nil means netlink.
	Links LinkCounters
	// Proc is the proc filesystem; "" means /proc.
	Proc string
	// Log gets what was left unknown and why (debug level); nil discards.
	Log *slog.Logger

	cpu cpuTracker
}

// Sample samples one VM. Figures that cannot be had are left unknown (CPU
// -1, guest memory nil) or zero, never an error: a VM being sampled while
// it stops is a normal event.
func (s *Sampler) Sample(ctx context.Context, t Target) api.VMStats {
	ctx, cancel := context.WithTimeout(ctx, s.guestTimeout())
	defer cancel()
	return s.sample(ctx, t)
}

// SampleAll samples the VMs concurrently (at most Parallel at once), all
// guests sharing one GuestTimeout, and returns their figures in the order
// given.
func (s *Sampler) SampleAll(ctx context.Context, ts []Target) []api.VMStats {
	ctx, cancel := context.WithTimeout(ctx, s.guestTimeout())
	defer cancel()
	out := make([]api.VMStats, len(ts))
	sem := make(chan struct{}, s.parallel())
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = s.sample(ctx, t)
		}()
	}
	wg.Wait()
	return out
}

// sample reads the host's figures, then asks the guest until ctx ends.
func (s *Sampler) sample(ctx context.Context, t Target) api.VMStats {
	st := api.VMStats{VM: t.Name, Time: time.Now().UTC(), CPUPercent: -1, Disks: []api.DiskStats{}}
	if p, err := readProc(s.proc(), t.PID, t.StartTime); err != nil {
		s.debug("hypervisor process unreadable", t, err)
	} else {
		st.CPUPercent = s.cpu.observe(procKey{t.PID, p.startTime}, p.cpuTicks, p.now, p.startSeconds())
		st.HostRSSBytes = p.rssBytes
	}
	for _, d := range t.Disks {
		ds, err := diskUsage(d)
		if err != nil {
			s.debug("disk unreadable", t, err)
			continue
		}
		st.Disks = append(st.Disks, ds)
	}
	if t.TAP != "" {
		// The TAP's receive is what the guest sent, and the reverse.
		rx, tx, err := s.links().Counters(t.TAP)
		if err != nil {
			s.debug("tap counters unreadable", t, err)
		} else {
			st.NetRxBytes, st.NetTxBytes = clampInt64(tx), clampInt64(rx)
		}
	}
	if t.Agent != nil {
		st.GuestMemTotalBytes, st.GuestMemUsedBytes = s.guestMemory(ctx, t)
	}
	return st
}

func (s *Sampler) guestTimeout() time.Duration {
	if s.GuestTimeout > 0 {
		return s.GuestTimeout
	}
	return DefaultGuestTimeout
}

func (s *Sampler) parallel() int {
	if s.Parallel > 0 {
		return s.Parallel
	}
	return DefaultParallel
}

func (s *Sampler) proc() string {
	if s.Proc != "" {
		return s.Proc
	}
	return "/proc"
}

func (s *Sampler) links() LinkCounters {
	if s.Links != nil {
		return s.Links
	}
	return Netlink{}
}

func (s *Sampler) debug(msg string, t Target, err error) {
	if s.Log != nil {
		s.Log.Debug("vm stats: "+msg, "vm", t.Name, "error", err)
	}
}

func clampInt64(n uint64) int64 {
	if n > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(n)
}
