package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// healthReporter answers health requests with the guest's real state.
type healthReporter struct {
	procDir  string // "/proc"
	build    buildinfo.Info
	now      func() time.Time
	uptime   func() (time.Duration, error)
	hostname func() (string, error)
	release  func() (string, error)
	payload  func() string // this boot's payload state; nil reports none
}

var _ agentproto.Handler = (*healthReporter)(nil)

func newHealthReporter() *healthReporter {
	return &healthReporter{
		procDir:  "/proc",
		build:    buildinfo.Get(),
		now:      time.Now,
		uptime:   bootUptime,
		hostname: os.Hostname,
		release:  kernelRelease,
	}
}

func (r *healthReporter) Health(context.Context) (agentproto.Health, error) {
	h := agentproto.Health{
		Protocol:     agentproto.Version,
		AgentVersion: r.build.Version,
		BuildID:      r.build.BuildID,
		Time:         r.now().UTC(),
	}
	if r.payload != nil {
		h.Payload = r.payload()
	}
	var err error
	if h.Hostname, err = r.hostname(); err != nil {
		return h, fmt.Errorf("hostname: %w", err)
	}
	if h.Kernel, err = r.release(); err != nil {
		return h, fmt.Errorf("kernel release: %w", err)
	}
	up, err := r.uptime()
	if err != nil {
		return h, fmt.Errorf("uptime: %w", err)
	}
	h.UptimeMS = up.Milliseconds()
	p := filepath.Join(r.procDir, "self", "mountinfo")
	f, err := os.Open(p)
	if err != nil {
		return h, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return h, fmt.Errorf("reading %s: %w", p, err)
	}
	if m, ok := lastMountAt(mounts, "/"); ok {
		h.Root = m.FSType
	}
	if m, ok := lastMountAt(mounts, "/root"); ok {
		h.RootMount = m.Source
	}
	return h, nil
}

// bootUptime is the time since boot, suspend included.
func bootUptime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	MountPoint string
	FSType     string
	Source     string
}

// parseMountinfo reads /proc/<pid>/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Mount points and sources have space, tab, newline and backslash escaped
// as octal (\040).
func parseMountinfo(r io.Reader) ([]mount, error) {
	var mounts []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("line %d: malformed: %q", n, sc.Text())
		}
		mounts = append(mounts, mount{
			MountPoint: unescapeOctal(f[4]),
			FSType:     f[sep+1],
			Source:     unescapeOctal(f[sep+2]),
		})
	}
	return mounts, sc.Err()
}

// lastMountAt returns the mount on top at path: the last one listed.
func lastMountAt(mounts []mount, path string) (mount, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].MountPoint == path {
			return mounts[i], true
		}
	}
	return mount{}, false
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
