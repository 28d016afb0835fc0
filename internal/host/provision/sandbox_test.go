package provision

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/buildsandbox/sandboxtest"
)

// TestChrootCommandsCannotReachTheHost runs the probe (a copy of this test
// binary) through Chroot.Run in a tiny root and checks what a hostile
// package script could do from there. Before the build sandbox, commands
// ran in a plain chroot with the host's /dev bound in: every check here
// failed.
func TestChrootCommandsCannotReachTheHost(t *testing.T) {
	requireRoot(t)
	root := sandboxtest.MakeRoot(t)
	c, err := OpenChroot(root, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Hostname = "banger-test-image"
	name := fmt.Sprintf("banger-provision-marker-%d", os.Getpid())
	for _, p := range []string{"/" + name, filepath.Join(filepath.Dir(root), name)} {
		if err := os.WriteFile(p, []byte("host secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
	}
	hostName, _ := os.Hostname()

	tests := []struct {
		what string
		argv []string
		want string
	}{
		{"no host block device", []string{"stat", hostDisk(t)}, "err ENOENT"},
		{"/dev is the sandbox's", []string{"ls", "/dev"}, "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"},
		{"host file unreachable", []string{"read", "/" + name}, "err ENOENT"},
		{"host file unreachable through ..", []string{"read", "/../../../" + name}, "err ENOENT"},
		{"host file unreachable through the chroot escape", []string{"chroot-escape", "/" + name}, "err ENOENT"},
		{"mknod fails", []string{"mknod", "/tmp/null"}, "err EPERM"},
		{"mount fails", []string{"mount", "/tmp/m"}, "err EPERM"},
		{"host processes out of reach", []string{"kill", strconv.Itoa(os.Getpid())}, "err ESRCH"},
		{"hostname is the image's", []string{"hostname"}, "banger-test-image"},
		{"hostname cannot change", []string{"sethostname", "evil"}, "err EPERM"},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			out, err := c.Run(context.Background(), nil, sandboxtest.Probe(tt.argv[0], tt.argv[1:]...)...)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("probe %v = %q, want %q", tt.argv, out, tt.want)
			}
		})
	}
	t.Run("only the sandbox's processes are visible", func(t *testing.T) {
		out, err := c.Run(context.Background(), nil, sandboxtest.Probe("pids")...)
		if err != nil {
			t.Fatal(err)
		}
		pids, self, _ := strings.Cut(string(out), ":")
		if want := "1 " + self; pids != want {
			t.Errorf("/proc lists %q, want %q (the sandbox's init and the probe)", pids, want)
		}
	})
	if now, _ := os.Hostname(); now != hostName {
		t.Errorf("the host's hostname changed from %q to %q", hostName, now)
	}
}

// hostDisk returns a block device node the host has.
func hostDisk(t *testing.T) string {
	t.Helper()
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		if _, err := os.Stat("/dev/" + e.Name()); err == nil {
			return "/dev/" + e.Name()
		}
	}
	t.Skip("the host has no block device in /sys/block with a node in /dev")
	return ""
}
