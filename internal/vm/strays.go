package vm

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// hypervisorCommands are the programs a VM directory's stray process can
// be: what the drivers start.
var hypervisorCommands = []string{"qemu-system-x86_64", "firecracker", "jailer"}

// killStrays kills hypervisor processes still working on dir: a daemon
// killed between a launch and recording its handle leaves one that no
// record names. Only processes whose command is a hypervisor and whose
// command line names dir are touched. It returns the pids it killed.
func killStrays(dir string, commands []string) []int {
	dir = filepath.Clean(dir) + "/"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var killed []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(raw, []byte(dir)) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		base := filepath.Base(args[0])
		for _, c := range commands {
			if base == c {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = append(killed, pid)
				}
				break
			}
		}
	}
	return killed
}
