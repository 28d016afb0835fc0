package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultVMUser is the system user a root daemon runs hypervisors as.
const DefaultVMUser = "banger-vm"

// VMUser is the unprivileged identity a daemon running as root gives its
// hypervisor processes (QEMU directly, Firecracker through the jailer), so
// that a guest which escapes into its hypervisor holds no root. It owns no
// file of a VM: the daemon opens what the hypervisor needs and passes the
// descriptors (QEMU), or gives the jailed copies to it (jailer).
type VMUser struct {
	Name     string
	UID, GID uint32
}

// LookupVMUser finds the system user name. The error names the command
// that creates it.
func LookupVMUser(name string) (VMUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return VMUser{}, fmt.Errorf("the VM user %q does not exist (%v): create it with %s, or set vm_user to an existing unprivileged user", name, err, strings.Join(UserAddCommand(name), " "))
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return VMUser{}, fmt.Errorf("the VM user %q has uid %q, gid %q: not numeric", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return VMUser{}, fmt.Errorf("the VM user %q is uid %d, gid %d: hypervisors must not run as root; set vm_user to an unprivileged user", name, uid, gid)
	}
	return VMUser{Name: name, UID: uint32(uid), GID: uint32(gid)}, nil
}

// CheckVMUser reports why the user name cannot be the VM user, as
// LookupVMUser would: an existing user that is root (uid or gid 0). A
// user that does not exist yet passes: EnsureVMUser creates it.
func CheckVMUser(name string) error {
	if _, err := user.Lookup(name); err != nil {
		return nil
	}
	_, err := LookupVMUser(name)
	return err
}

// UserAddCommand is how EnsureVMUser creates the VM user: a system user
// with its own group, no home and no login shell.
func UserAddCommand(name string) []string {
	return []string{"useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name}
}

// EnsureVMUser returns the VM user, creating it with UserAddCommand when
// it is missing. Safe to call on every daemon start: an existing user is
// left as it is.
func EnsureVMUser(ctx context.Context, name string) (VMUser, error) {
	if _, err := user.Lookup(name); !errors.As(err, new(user.UnknownUserError)) {
		return LookupVMUser(name)
	}
	argv := UserAddCommand(name)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		// Another daemon may have created it in the meantime.
		if u, lerr := LookupVMUser(name); lerr == nil {
			return u, nil
		}
		return VMUser{}, fmt.Errorf("creating the VM user: %s: %v: %s; create it by hand or set vm_user to an existing unprivileged user", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return LookupVMUser(name)
}

// Credential is what a hypervisor process starts with: the VM user's uid
// and gid, and no supplementary group but those in groups (the group of
// /dev/kvm when the VM uses KVM).
func (u VMUser) Credential(groups ...uint32) *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, groups...)}
}

// DeviceGroup returns the group that may read and write the device at
// path (/dev/kvm's "kvm"), when its mode grants the group access.
func DeviceGroup(path string) (uint32, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false
	}
	if st.Mode&0o060 != 0o060 || st.Gid == 0 {
		return 0, false
	}
	return st.Gid, true
}

// ProcessUIDs returns the real and effective uid of a process, from the
// Uid line of /proc/PID/status.
func ProcessUIDs(pid int) (real, effective uint32, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "Uid:" {
			r, err1 := strconv.ParseUint(f[1], 10, 32)
			e, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 != nil || err2 != nil {
				break
			}
			return uint32(r), uint32(e), nil
		}
	}
	return 0, 0, fmt.Errorf("/proc/%d/status: no Uid line", pid)
}
