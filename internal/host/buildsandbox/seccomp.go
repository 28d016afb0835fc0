package buildsandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A denial is one system call the build may not make, as data. With
// Flags set, only calls whose first argument has one of those bits are
// refused (clone and unshare asking for a new user namespace).
type denial struct {
	Name  string
	Nr    uint32
	Flags uint32
	Errno unix.Errno
}

// Denied are the system calls a build is refused, beyond what the dropped
// capabilities already forbid: the ways into kernel code that
// unprivileged processes can still reach and that a build never needs. A
// new user namespace would hand the build every capability again inside
// it (and with them nf_tables and other code with a long record of
// privilege escalations); keyrings are shared with the host's root user;
// bpf, perf_event_open, userfaultfd and io_uring are large attack surfaces
// that installers do without (libuv, which node uses, falls back from
// io_uring). clone3 passes its flags in memory the filter cannot read, so
// it answers ENOSYS, on which the C library falls back to clone.
var Denied = []denial{
	{Name: "unshare(CLONE_NEWUSER)", Nr: unix.SYS_UNSHARE, Flags: unix.CLONE_NEWUSER, Errno: unix.EPERM},
	{Name: "clone(CLONE_NEWUSER)", Nr: unix.SYS_CLONE, Flags: unix.CLONE_NEWUSER, Errno: unix.EPERM},
	{Name: "clone3", Nr: unix.SYS_CLONE3, Errno: unix.ENOSYS},
	{Name: "keyctl", Nr: unix.SYS_KEYCTL, Errno: unix.EPERM},
	{Name: "add_key", Nr: unix.SYS_ADD_KEY, Errno: unix.EPERM},
	{Name: "request_key", Nr: unix.SYS_REQUEST_KEY, Errno: unix.EPERM},
	{Name: "bpf", Nr: unix.SYS_BPF, Errno: unix.EPERM},
	{Name: "perf_event_open", Nr: unix.SYS_PERF_EVENT_OPEN, Errno: unix.EPERM},
	{Name: "userfaultfd", Nr: unix.SYS_USERFAULTFD, Errno: unix.EPERM},
	{Name: "io_uring_setup", Nr: unix.SYS_IO_URING_SETUP, Errno: unix.ENOSYS},
}

// nativeArch is the seccomp architecture of this build's system calls.
// Calls through another ABI (i386's int 0x80 or x32 on x86-64) could
// bypass a filter written for the native numbers, so they kill the
// process: a build cannot run 32-bit programs.
func nativeArch() (uint32, error) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, nil
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, nil
	}
	return 0, fmt.Errorf("no system call filter for %s: the build sandbox supports amd64 and arm64", runtime.GOARCH)
}

// Offsets in struct seccomp_data.
const (
	seccompNr   = 0
	seccompArch = 4
	seccompArg0 = 16 // low 32 bits on little-endian machines
)

// x32SyscallBit marks x32 system calls on x86-64.
const x32SyscallBit = 0x40000000

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// filterProgram compiles denied into a classic BPF seccomp program for
// arch.
func filterProgram(arch uint32, denied []denial) []unix.SockFilter {
	const (
		ld   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	allow := stmt(ret, unix.SECCOMP_RET_ALLOW)
	kill := stmt(ret, unix.SECCOMP_RET_KILL_PROCESS)
	prog := []unix.SockFilter{
		stmt(ld, seccompArch),
		jump(jeq, arch, 1, 0),
		kill,
		stmt(ld, seccompNr),
	}
	if arch == unix.AUDIT_ARCH_X86_64 {
		prog = append(prog, jump(jge, x32SyscallBit, 0, 1), kill)
	}
	for _, d := range denied {
		refuse := stmt(ret, unix.SECCOMP_RET_ERRNO|uint32(d.Errno)&unix.SECCOMP_RET_DATA)
		if d.Flags == 0 {
			prog = append(prog, jump(jeq, d.Nr, 0, 1), refuse)
			continue
		}
		// The number matched: decide on the flags, then allow or refuse
		// (the accumulator no longer holds the number).
		prog = append(prog,
			jump(jeq, d.Nr, 0, 4),
			stmt(ld, seccompArg0),
			jump(jset, d.Flags, 0, 1),
			refuse,
			allow,
		)
	}
	return append(prog, allow)
}

// installFilter applies the filter of Denied to the calling thread (and so
// to the processes it starts). no_new_privs must be set already.
func installFilter() error {
	arch, err := nativeArch()
	if err != nil {
		return err
	}
	prog := filterProgram(arch, Denied)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("installing the system call filter: %w", err)
	}
	return nil
}
