package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/image"
	"golang.org/x/sys/unix"
)

const gib = int64(1) << 30

func TestCheckCreateSpace(t *testing.T) {
	tests := []struct {
		name     string
		free     int64
		promised int64
		wantErr  []string // substrings; nil means allowed
	}{
		{"plenty", 100 * gib, 10 * gib, nil},
		{"exactly promised plus margin", 11 * gib, 10 * gib, nil},
		{"one byte short", 11*gib - 1, 10 * gib, []string{"11GiB in all", "/srv/vms has 10.9GiB free"}},
		{"tiny filesystem", 64 << 20, 9 * gib, []string{
			"its disks can grow to 9GiB", "1GiB more is kept free", "10GiB in all", "/srv/vms has 64MiB free",
			"free space in /srv/vms or lower disk_bytes"}},
		{"full", 0, 2 * gib, []string{"has 0B free"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCreateSpace(spaceReading{Dir: "/srv/vms", Free: tt.free}, tt.promised)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition || ae.Field != "disk_bytes" {
				t.Fatalf("err = %#v, want a failed_precondition error about disk_bytes", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

func TestCheckStartSpace(t *testing.T) {
	tests := []struct {
		name        string
		free        int64
		growth      int64
		wantErr     string
		wantWarning string
	}{
		{"plenty", 50 * gib, 8 * gib, "", ""},
		{"disks could outgrow the filesystem", 4 * gib, 8 * gib, "", "can still grow by 8GiB, but /srv/vms/x has 4GiB free"},
		{"nearly full", 512 << 20, 0, "/srv/vms/x has 512MiB free and a running VM needs at least 1GiB free beside it: free space in /srv/vms/x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warning, err := checkStartSpace(spaceReading{Dir: "/srv/vms/x", Free: tt.free}, tt.growth)
			if got := fmt.Sprint(err); (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if (tt.wantWarning == "") != (warning == "") || !strings.Contains(warning, tt.wantWarning) {
				t.Errorf("warning = %q, want %q", warning, tt.wantWarning)
			}
		})
	}
}

// recordingProgress keeps what a check logged.
type recordingProgress struct{ logs []string }

func (p *recordingProgress) Stage(string)          {}
func (p *recordingProgress) Detail(string, ...any) {}
func (p *recordingProgress) Logf(format string, a ...any) {
	p.logs = append(p.logs, fmt.Sprintf(format, a...))
}

// TestSpaceChecksOnARealSmallFilesystem reads a real tmpfs, mounted in a
// private mount namespace so nothing outside the test sees it.
func TestSpaceChecksOnARealSmallFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs in a private mount namespace needs root")
	}
	// The image lives on the ordinary filesystem: a sparse 512 MiB rootfs.
	imgDir := t.TempDir()
	rootfs := filepath.Join(imgDir, "rootfs.ext4")
	if err := os.WriteFile(rootfs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(rootfs, 512<<20); err != nil {
		t.Fatal(err)
	}
	img := image.Image{Name: "test", Artifacts: map[image.Kind]image.Artifact{image.Rootfs: {Kind: image.Rootfs, Path: rootfs}}}

	tests := []struct {
		name      string
		size      string // tmpfs size
		create    string // "" allowed, else a substring of the refusal
		start     string
		startWarn string
	}{
		{name: "small filesystem refuses", size: "256M",
			create: "but %s has 256MiB free: free space in %s or lower disk_bytes",
			start:  "%s has 256MiB free and a running VM needs at least 1GiB free"},
		{name: "too small for the promise, enough to start", size: "2G",
			create:    "its disks can grow to 1.5GiB, and 1GiB more is kept free for the host (2.5GiB in all), but %s has 2GiB free",
			startWarn: "can still grow by 1.5GiB"},
		{name: "room enough", size: "4G"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			m := &Manager{Cfg: &config.Config{Paths: config.Paths{StateDir: state}}}
			var createErr, startErr error
			p := &recordingProgress{}
			inPrivateTmpfs(t, state, tt.size, func() {
				createErr = m.checkSpaceForCreate(img, gib)
				// A stopped VM made from img: its disks sparse at full size.
				v := &VM{}
				v.ID = "vm-1"
				dir := m.Dir(v.ID)
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Error(err)
					return
				}
				for _, d := range []struct {
					path string
					size int64
				}{{rootDisk(dir), 512 << 20}, {workDisk(dir), gib}} {
					if err := os.WriteFile(d.path, nil, 0o600); err != nil {
						t.Error(err)
					}
					os.Truncate(d.path, d.size)
				}
				startErr = m.checkSpaceForStart(v, p)
			})
			vmsDir := filepath.Join(state, "vms")
			check := func(what string, err error, want, dir string) {
				if want == "" {
					if err != nil {
						t.Errorf("%s refused: %v", what, err)
					}
					return
				}
				if want = strings.ReplaceAll(want, "%s", dir); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: err = %v, want one containing %q", what, err, want)
				}
			}
			check("create", createErr, tt.create, vmsDir)
			check("start", startErr, tt.start, filepath.Join(vmsDir, "vm-1"))
			if got := strings.Join(p.logs, "\n"); (tt.startWarn == "") != (got == "") || !strings.Contains(got, tt.startWarn) {
				t.Errorf("start logged %q, want a warning containing %q", got, tt.startWarn)
			}
		})
	}
}

// inPrivateTmpfs runs fn on an OS thread that has its own mount namespace
// with a tmpfs of size mounted at dir. The thread is never handed back to
// the Go scheduler, so the namespace ends with fn.
func inPrivateTmpfs(t *testing.T, dir, size string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- fmt.Errorf("making mounts private: %w", err)
			return
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
			done <- fmt.Errorf("mounting tmpfs: %w", err)
			return
		}
		fn()
		unix.Unmount(dir, 0) // and the namespace goes with the thread
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Skipf("cannot mount a private tmpfs here: %v", err)
	}
}
