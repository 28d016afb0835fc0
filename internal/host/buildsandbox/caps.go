package buildsandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Kept are the capabilities a build keeps: what dpkg, apt (which drops to
// its _apt user), npm and maintainer scripts need to own, chmod and chown
// files in the image, switch users and signal their own processes. Every
// other capability is dropped before the command starts, notably
// CAP_SYS_ADMIN (mount, namespaces of its own), CAP_SYS_MODULE,
// CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_MKNOD,
// CAP_NET_ADMIN and CAP_NET_RAW (the network namespace is the host's),
// CAP_NET_BIND_SERVICE (a low port would be the host's), CAP_DAC_READ_SEARCH
// (open_by_handle_at reaches files of the same filesystem outside the
// root), CAP_IPC_LOCK, CAP_SYS_RESOURCE, CAP_BPF, CAP_PERFMON,
// CAP_SYSLOG, CAP_MAC_*, CAP_AUDIT_*, CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND and
// CAP_LINUX_IMMUTABLE.
//
// CAP_SYS_CHROOT stays: after pivot_root there is nothing outside the root
// for a chroot to escape to, and some build scripts chroot into trees they
// make. CAP_SETFCAP stays so packages can give binaries file capabilities
// (ping) for the machines the image boots; under no_new_privs they grant
// nothing inside the sandbox.
var Kept = []int{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_FOWNER,
	unix.CAP_FSETID,
	unix.CAP_KILL,
	unix.CAP_SETGID,
	unix.CAP_SETUID,
	unix.CAP_SETPCAP,
	unix.CAP_SETFCAP,
	unix.CAP_SYS_CHROOT,
}

// KeptMask is Kept as the bit mask /proc/PID/status shows in CapBnd and
// CapEff.
func KeptMask() uint64 {
	var m uint64
	for _, c := range Kept {
		m |= 1 << uint(c)
	}
	return m
}

// lastCap is the highest capability the running kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return unix.CAP_LAST_CAP
}

// dropCapabilities reduces the calling thread to keep: every other
// capability leaves the bounding set (so no later execve regains it), the
// ambient set is emptied, the effective and permitted sets become keep and
// the inheritable set empty; then no_new_privs is set, so neither
// set-user-ID nor file capabilities grant more. Capabilities are per
// thread: the caller locks its goroutine to the thread and starts the
// command from it.
func dropCapabilities(keep []int, last int) error {
	kept := map[int]bool{}
	for _, c := range keep {
		kept[c] = true
	}
	for c := 0; c <= last; c++ {
		if kept[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for c := range kept {
		data[c/32].Effective |= 1 << uint(c%32)
		data[c/32].Permitted |= 1 << uint(c%32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting the capability sets: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return nil
}
