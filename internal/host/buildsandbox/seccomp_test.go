package buildsandbox

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter interprets prog (the classic BPF subset filterProgram emits)
// on one system call and returns the verdict.
func runFilter(t *testing.T, prog []unix.SockFilter, arch, nr uint32, arg0 uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[seccompNr:], nr)
	binary.LittleEndian.PutUint32(data[seccompArch:], arch)
	binary.LittleEndian.PutUint64(data[seccompArg0:], arg0)
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var cond bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				cond = a == in.K
			case unix.BPF_JGE:
				cond = a >= in.K
			case unix.BPF_JSET:
				cond = a&in.K != 0
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, in.Code)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

func TestFilterProgram(t *testing.T) {
	errno := func(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }
	const allow, kill = unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_KILL_PROCESS
	const x86, i386 = unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386
	tests := []struct {
		name     string
		arch, nr uint32
		arg0     uint64
		want     uint32
	}{
		{"an ordinary call", x86, unix.SYS_OPENAT, 0, allow},
		{"clone of a thread", x86, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_THREAD, allow},
		{"clone into new PID and mount namespaces (refused by capabilities, not here)", x86, unix.SYS_CLONE, unix.CLONE_NEWPID | unix.CLONE_NEWNS, allow},
		{"clone into a new user namespace", x86, unix.SYS_CLONE, unix.CLONE_NEWUSER | unix.CLONE_NEWNS, errno(unix.EPERM)},
		{"unshare of a user namespace", x86, unix.SYS_UNSHARE, unix.CLONE_NEWUSER, errno(unix.EPERM)},
		{"unshare of the file table", x86, unix.SYS_UNSHARE, unix.CLONE_FILES, allow},
		{"clone3", x86, unix.SYS_CLONE3, 0, errno(unix.ENOSYS)},
		{"keyctl", x86, unix.SYS_KEYCTL, 0, errno(unix.EPERM)},
		{"bpf", x86, unix.SYS_BPF, 0, errno(unix.EPERM)},
		{"io_uring_setup", x86, unix.SYS_IO_URING_SETUP, 1, errno(unix.ENOSYS)},
		{"the last denial", x86, Denied[len(Denied)-1].Nr, 0, errno(Denied[len(Denied)-1].Errno)},
		{"an x32 call", x86, x32SyscallBit | unix.SYS_UNSHARE, unix.CLONE_NEWUSER, kill},
		{"an i386 call", i386, 310, unix.CLONE_NEWUSER, kill},
	}
	prog := filterProgram(x86, Denied)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, prog, tt.arch, tt.nr, tt.arg0); got != tt.want {
				t.Errorf("verdict %#x, want %#x", got, tt.want)
			}
		})
	}
	// Every denial is reachable with its own verdict.
	for _, d := range Denied {
		arg := uint64(0)
		if d.Flags != 0 {
			arg = uint64(d.Flags)
		}
		if got := runFilter(t, prog, x86, d.Nr, arg); got != errno(d.Errno) {
			t.Errorf("%s: verdict %#x, want %s", d.Name, got, fmt.Sprint(d.Errno))
		}
	}
}
