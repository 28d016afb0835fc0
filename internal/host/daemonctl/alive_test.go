package daemonctl

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// zombieLeaderEnv makes the test binary a process whose main thread has
// exited while its other threads run: the state a SIGKILLed daemon is in
// between its leader's exit and its last thread's.
const zombieLeaderEnv = "DAEMONCTL_TEST_ZOMBIE_LEADER"

func init() {
	if os.Getenv(zombieLeaderEnv) != "" {
		// Package init runs on the main thread; exit only it (not the
		// thread group). The runtime's other threads keep the process.
		os.Stdout.WriteString("leader exiting\n")
		syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
	}
}

// TestProcessAliveWhileThreadsExit: a process whose leader is a zombie
// but whose other threads still run is alive (its files may still be
// open); once it is gone, it is not.
func TestProcessAliveWhileThreadsExit(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), zombieLeaderEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "leader exiting\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	// Wait until the leader is a zombie (it has just called exit).
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatalf("helper gone: %v", err)
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			break
		}
	}
	if tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task"); len(tasks) < 2 {
		t.Skipf("the helper has %d threads left; the state cannot be made here", len(tasks))
	}
	if !processAlive(pid) {
		t.Error("a process whose leader exited but whose threads run is reported dead")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if processAlive(pid) {
		t.Error("a killed and reaped process is reported alive")
	}
}
