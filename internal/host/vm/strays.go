package vm

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// hypervisorCommands are the programs a VM directory's stray process can
// be: what the drivers start.
var hypervisorCommands = []string{"qemu-system-x86_64", "firecracker", "jailer"}

// hypervisorProcs lists the processes whose command is one of commands
// (a hypervisor), with their command lines: read once from /proc per
// reconcile, however many VMs it checks.
func hypervisorProcs(commands []string) map[int][]string {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int][]string{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if slices.Contains(commands, filepath.Base(args[0])) {
			out[pid] = args
		}
	}
	return out
}

// killStrays kills the hypervisor processes of procs still working on
// dir: a daemon killed between a launch and recording its handle leaves
// one that no record names. Only processes whose command line names the
// VM (namesVM) are touched. It returns the pids it killed.
func killStrays(dir string, procs map[int][]string) []int {
	var killed []int
	for pid, args := range procs {
		if namesVM(args, dir) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	slices.Sort(killed)
	return killed
}

// namesVM reports whether a command line works on the VM whose directory
// is dir: it names a path in the directory (a hypervisor given paths), or
// the VM's id as the drivers pass it when the hypervisor gets descriptors
// or a jail instead of paths: QEMU's `-name guest=ID`, Firecracker's and
// the jailer's `--id ID`.
func namesVM(args []string, dir string) bool {
	dir = filepath.Clean(dir)
	id := filepath.Base(dir)
	for i, a := range args {
		switch {
		case strings.Contains(a, dir+"/"):
			return true
		case a == "-name" && i+1 < len(args):
			if name, _, _ := strings.Cut(args[i+1], ","); name == "guest="+id {
				return true
			}
		case a == "--id" && i+1 < len(args) && args[i+1] == id:
			return true
		}
	}
	return false
}

// killStraysUnless is killStrays sparing the process of h (a recorded
// hypervisor, which its driver ends).
func killStraysUnless(dir string, procs map[int][]string, h *hypervisor.Handle) []int {
	if h == nil {
		return killStrays(dir, procs)
	}
	others := make(map[int][]string, len(procs))
	for pid, args := range procs {
		if pid != h.PID {
			others[pid] = args
		}
	}
	return killStrays(dir, others)
}
