package buildsandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// recordingSystem records the executor's calls; paths in files exist as
// files, in dirs as directories, and failing paths fail to mount.
type recordingSystem struct {
	files, dirs map[string]bool
	failMount   map[string]error
	calls       []string
}

func (r *recordingSystem) Mount(source, target, fstype string, flags uintptr, data string) error {
	r.calls = append(r.calls, fmt.Sprintf("mount %s %s %s %#x %s", source, target, fstype, flags, data))
	return r.failMount[target]
}
func (r *recordingSystem) Mkdir(p string, mode uint32) error {
	r.calls = append(r.calls, fmt.Sprintf("mkdir %s %o", p, mode))
	r.dirs[p] = true
	return nil
}
func (r *recordingSystem) Chmod(p string, mode uint32) error {
	r.calls = append(r.calls, fmt.Sprintf("chmod %s %o", p, mode))
	return nil
}
func (r *recordingSystem) Mknod(p string, mode uint32, dev int) error {
	r.calls = append(r.calls, fmt.Sprintf("mknod %s %o %d:%d", p, mode, unix.Major(uint64(dev)), unix.Minor(uint64(dev))))
	return nil
}
func (r *recordingSystem) Symlink(target, p string) error {
	r.calls = append(r.calls, fmt.Sprintf("symlink %s %s", p, target))
	return nil
}
func (r *recordingSystem) Sethostname(name string) error {
	r.calls = append(r.calls, "hostname "+name)
	return nil
}
func (r *recordingSystem) Lstat(p string) (bool, bool, error) {
	return r.files[p] || r.dirs[p], r.dirs[p], nil
}

func TestExecutor(t *testing.T) {
	const ro = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	tests := []struct {
		name    string
		files   []string
		dirs    []string
		fail    map[string]error
		steps   []step
		want    []string
		wantErr string
	}{
		{
			name:  "an existing directory is not made again; a missing one is, with its mode",
			dirs:  []string{"/proc"},
			steps: []step{{Op: opMkdir, Path: "/proc", Mode: 0o555}, {Op: opMkdir, Path: "/dev/shm", Mode: 0o1777}},
			want:  []string{"mkdir /dev/shm 777", "chmod /dev/shm 1777"},
		},
		{
			name:    "a file where a mount point belongs is refused",
			files:   []string{"/proc"},
			steps:   []step{{Op: opMkdir, Path: "/proc"}},
			wantErr: "/proc exists and is not a directory",
		},
		{
			name:  "device nodes get their mode whatever the umask",
			steps: []step{{Op: opMknod, Path: "/dev/null", Major: 1, Minor: 3, Mode: 0o666}},
			want:  []string{"mknod /dev/null 20666 1:3", "chmod /dev/null 666"},
		},
		{
			name:  "masks: /dev/null over a file, a read-only tmpfs over a directory, nothing over an absent path",
			files: []string{"/proc/kcore"},
			dirs:  []string{"/sys/firmware"},
			steps: []step{{Op: opMask, Path: "/proc/kcore"}, {Op: opMask, Path: "/sys/firmware"}, {Op: opMask, Path: "/proc/scsi"}},
			want: []string{
				fmt.Sprintf("mount /dev/null /proc/kcore  %#x ", unix.MS_BIND),
				fmt.Sprintf("mount tmpfs /sys/firmware tmpfs %#x mode=0555", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC),
			},
		},
		{
			name:  "read-only: bind onto itself, then remount read-only; absent paths are skipped",
			dirs:  []string{"/proc/sys"},
			steps: []step{{Op: opReadOnly, Path: "/proc/sys"}, {Op: opReadOnly, Path: "/proc/sysrq-trigger"}},
			want: []string{
				fmt.Sprintf("mount /proc/sys /proc/sys  %#x ", unix.MS_BIND|unix.MS_REC),
				fmt.Sprintf("mount /proc/sys /proc/sys  %#x ", ro),
			},
		},
		{
			name:    "a failing step stops the setup and is named",
			dirs:    []string{"/proc"},
			fail:    map[string]error{"/proc": unix.EPERM},
			steps:   []step{{Op: opMount, Source: "proc", Path: "/proc", FSType: "proc"}, {Op: opHostname, Target: "x"}},
			want:    []string{"mount proc /proc proc 0x0 "},
			wantErr: "mount proc on /proc: operation not permitted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordingSystem{files: map[string]bool{}, dirs: map[string]bool{}, failMount: tt.fail}
			for _, f := range tt.files {
				r.files[f] = true
			}
			for _, d := range tt.dirs {
				r.dirs[d] = true
			}
			err := apply(r, tt.steps)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, r.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunRefusesABinaryThatIsNotAnInit runs the sandbox with a program
// that ignores the init's protocol, as a daemon whose main forgot to call
// Init would: Run must fail and say how to fix it, not report success.
func TestRunRefusesABinaryThatIsNotAnInit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (PID and mount namespaces)")
	}
	if _, err := os.Stat("/bin/true"); err != nil {
		t.Skip("no /bin/true on this host")
	}
	defer func(old string) { selfExe = old }(selfExe)
	selfExe = "/bin/true"
	err := Run(context.Background(), Spec{Root: t.TempDir(), Path: "/bin/x", Args: []string{"x"}}, nil, nil)
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "buildsandbox.Init") {
		t.Errorf("error = %v, want a SetupError naming buildsandbox.Init", err)
	}
}
