package identity

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const kernelBootID = "/proc/sys/kernel/random/boot_id"

// TestBootIDMount binds boot IDs over the kernel's real boot_id with the
// real BindMounter, in a child process with a private mount namespace
// (the test binary again, unshared with CLONE_NEWNS, which Go makes
// MS_PRIVATE), so the host's mounts never change: the child checks that
// the file reads the new ID, that a second call replaces the mount
// instead of stacking one, and that the mount is read-only.
func TestBootIDMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a mount namespace and bind mounts need root; run the tests as root (CI does)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"=bootid", "BANGER_IDENTITY_TEST_ROOT="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 77 {
		t.Skipf("cannot bind over %s here: %s", kernelBootID, out)
	}
	if err != nil {
		t.Fatalf("boot ID child: %v\n%s", err, out)
	}
	t.Logf("child: %s", out)
	before, err := os.ReadFile(kernelBootID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), strings.TrimSpace(string(before))) {
		t.Errorf("the child saw this namespace's boot ID %s after binding its own", before)
	}
}

// bootIDChild is TestBootIDMount's child: exit 0 when every check
// passes, 77 when binding is impossible here, 1 with the reason otherwise.
func bootIDChild() int {
	fail := func(format string, args ...any) int {
		fmt.Printf(format+"\n", args...)
		return 1
	}
	sys := System{Root: os.Getenv("BANGER_IDENTITY_TEST_ROOT"), ProcDir: "/proc", Mounter: BindMounter{}}
	ids := []string{"11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-aaaaaaaaaaaa"}
	for i, id := range ids {
		if err := setBootID(sys, id); err != nil {
			if i == 0 {
				fmt.Printf("%v\n", err)
				return 77
			}
			return fail("second setBootID: %v", err)
		}
		b, err := os.ReadFile(kernelBootID)
		if err != nil {
			return fail("%v", err)
		}
		if string(b) != id+"\n" {
			return fail("%s reads %q after setting %s", kernelBootID, b, id)
		}
		if n, err := mountsAt(kernelBootID); err != nil || n != 1 {
			return fail("%d mounts at %s after call %d (%v), want 1", n, kernelBootID, i+1, err)
		}
	}
	if err := os.WriteFile(kernelBootID, []byte("x\n"), 0o444); !errors.Is(err, syscall.EROFS) {
		return fail("writing over the bound boot ID: %v, want EROFS", err)
	}
	if b, _ := os.ReadFile(filepath.Join(sys.Root, BootIDFile)); string(b) != ids[1]+"\n" {
		return fail("%s holds %q", BootIDFile, b)
	}
	fmt.Printf("bound %s\n", ids[1])
	return 0
}

// mountsAt counts the mounts whose mount point is p in this process's
// mount namespace.
func mountsAt(p string) (int, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 4 && f[4] == p {
			n++
		}
	}
	return n, sc.Err()
}
