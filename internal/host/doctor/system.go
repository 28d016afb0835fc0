package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"golang.org/x/sys/unix"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/host/diskclone"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/qemu"
	"github.com/bangerdev/banger/internal/host/kvmprobe"
	"github.com/bangerdev/banger/internal/host/sshkey"
)

// System is the real Host: it reads this machine.
type System struct{}

var _ Host = System{}

// LookPath resolves a program on PATH (absolute paths are checked as is).
func (System) LookPath(file string) (string, error) { return exec.LookPath(file) }

// Version runs the program and returns the first non-empty line of its
// combined output (tools disagree on stdout versus stderr).
func (System) Version(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return line, nil
		}
	}
	return "", err
}

// ReadWrite opens path read-write and closes it again.
func (System) ReadWrite(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// Exists reports whether path exists.
func (System) Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// KVMDevice checks that /dev/kvm opens and speaks the stable KVM API.
func (System) KVMDevice() error { return kvmprobe.DeviceAccessible() }

// ReflinkSupported tries a FICLONE in dir.
func (System) ReflinkSupported(dir string) (bool, error) { return diskclone.ReflinkSupported(dir) }

// FreeSpace reads dir's filesystem with statfs(2): the blocks free to an
// unprivileged user, and its size.
func (System) FreeSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// SSHKey inspects the key and returns its fingerprint.
func (System) SSHKey(path string) (string, error) {
	k, err := sshkey.Inspect(path)
	if err != nil {
		return "", err
	}
	return k.Fingerprint, nil
}

// IsRoot reports whether this process runs as root.
func (System) IsRoot() bool { return os.Geteuid() == 0 }

// LookupUser finds a system user.
func (System) LookupUser(name string) (hypervisor.VMUser, error) {
	return hypervisor.LookupVMUser(name)
}

// QEMUSandbox starts bin with no machine, no devices and banger's
// -sandbox, and tells it over QMP on stdin to quit: QEMU applies the
// filter before it reads QMP, so a clean exit proves it accepts it.
func (System) QEMUSandbox(ctx context.Context, bin string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
		"-sandbox", qemu.Sandbox, "-qmp", "stdio")
	cmd.Stdin = strings.NewReader(`{"execute":"qmp_capabilities"}` + "\n" + `{"execute":"quit"}` + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return errors.New(msg)
		}
		return err
	}
	return nil
}
