package buildsandbox

import (
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestPlanShape(t *testing.T) {
	plan := Plan("img")
	index := map[string]int{} // first mount of each path
	for i, s := range plan {
		if s.Op == opMount {
			if _, ok := index[s.Path]; !ok {
				index[s.Path] = i
			}
		}
	}
	made := map[string]bool{}
	for i, s := range plan {
		t.Run(s.String(), func(t *testing.T) {
			if s.Op != opHostname && !path.IsAbs(s.Path) {
				t.Errorf("path %q is not absolute inside the sandbox", s.Path)
			}
			switch s.Op {
			case opMount:
				if !made[s.Path] {
					t.Errorf("%s is mounted before its mount point is made", s.Path)
				}
				if strings.HasPrefix(s.Source, "/") || s.Flags&unix.MS_BIND != 0 {
					t.Errorf("the plan binds %s: nothing of the host may be bound in", s.Source)
				}
			case opMkdir, opMknod, opSymlink:
				made[s.Path] = true
				// Under /dev: after the tmpfs, so nothing lands in the image.
				if strings.HasPrefix(s.Path, "/dev/") {
					if j, ok := index["/dev"]; !ok || j > i {
						t.Errorf("%s is made before /dev's tmpfs", s.Path)
					}
				}
			case opMask, opReadOnly:
				for _, dep := range []string{"/proc", "/sys", "/dev"} {
					if j, ok := index[dep]; !ok || j > i {
						t.Errorf("%s comes before %s is mounted", s, dep)
					}
				}
				if !made["/dev/null"] {
					t.Errorf("%s comes before /dev/null exists", s)
				}
			}
			creates := s.Op == opMkdir || s.Op == opMknod || s.Op == opSymlink
			if dir := path.Dir(s.Path); creates && dir != "/" && !made[dir] {
				t.Errorf("%s: its directory %s is not made first", s, dir)
			}
		})
	}
}

func TestPlanDevices(t *testing.T) {
	var nodes []string
	for _, s := range Plan("") {
		if s.Op == opMknod {
			nodes = append(nodes, s.String())
		}
	}
	want := []string{
		"mknod /dev/null c 1 3", "mknod /dev/zero c 1 5", "mknod /dev/full c 1 7",
		"mknod /dev/random c 1 8", "mknod /dev/urandom c 1 9", "mknod /dev/tty c 5 0",
	}
	if diff := cmp.Diff(want, nodes); diff != "" {
		t.Errorf("device nodes (-want +got):\n%s", diff)
	}
}

func TestPlanHostname(t *testing.T) {
	long := strings.Repeat("x", 80)
	tests := []struct{ in, want string }{
		{"", DefaultHostname},
		{"my-image", "my-image"},
		{long, long[:64]},
	}
	for _, tt := range tests {
		plan := Plan(tt.in)
		last := plan[len(plan)-1]
		if last.Op != opHostname || last.Target != tt.want {
			t.Errorf("Plan(%q) ends with %v, want hostname %q", tt.in, last, tt.want)
		}
	}
}

func TestKept(t *testing.T) {
	// The capabilities whose loss is the point of the sandbox.
	for _, c := range []int{unix.CAP_SYS_ADMIN, unix.CAP_SYS_MODULE, unix.CAP_SYS_RAWIO, unix.CAP_SYS_PTRACE,
		unix.CAP_SYS_BOOT, unix.CAP_SYS_TIME, unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_MKNOD,
		unix.CAP_DAC_READ_SEARCH, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYSLOG, unix.CAP_MAC_ADMIN,
		unix.CAP_MAC_OVERRIDE, unix.CAP_AUDIT_CONTROL, unix.CAP_AUDIT_WRITE, unix.CAP_LINUX_IMMUTABLE,
		unix.CAP_IPC_LOCK, unix.CAP_SYS_RESOURCE, unix.CAP_NET_BIND_SERVICE} {
		if KeptMask()&(1<<uint(c)) != 0 {
			t.Errorf("capability %d is kept", c)
		}
	}
	if KeptMask() != 0x800401fb {
		t.Errorf("KeptMask() = %#x; update this test and the package documentation together", KeptMask())
	}
}
