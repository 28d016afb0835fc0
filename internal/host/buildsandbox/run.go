package buildsandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Spec is one command to run in a sandbox.
type Spec struct {
	Root     string   // host path of the image's root directory
	Hostname string   // the sandbox's hostname; DefaultHostname when empty
	Path     string   // the program: an absolute path inside the root
	Args     []string // argv, Args[0] included
	Env      []string // the command's whole environment
	Dir      string   // working directory inside the root; "/" when empty
}

// Namespaces are the namespaces every sandbox gets fresh. The network
// namespace is not among them: builds download from the Debian mirror and
// the npm registry through the host's network.
const Namespaces = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP

// selfExe is the binary Run starts as the init: this one (tests replace it
// to check that a binary that is not an init is refused).
var selfExe = "/proc/self/exe"

// SetupError is a sandbox that could not be set up; the command did not
// run.
type SetupError struct{ Reason string }

func (e *SetupError) Error() string {
	return "setting up the build sandbox: " + e.Reason
}

// Run runs spec.Path in a new sandbox over spec.Root and waits for it,
// with its output going to stdout and stderr. It returns a *SetupError
// when the sandbox could not be made, an *exec.ExitError when the command
// failed. Cancelling ctx kills the sandbox's init, and with it every
// process of the build. When Run returns, nothing of the sandbox is left
// running and none of its mounts exist.
//
// The current binary must call Init when IsInit (see IsInit).
func Run(ctx context.Context, spec Spec, stdout, stderr io.Writer) error {
	if os.Geteuid() != 0 {
		return &SetupError{Reason: "needs root (mount, pivot_root and PID namespaces): run the daemon as root to build images"}
	}
	root, err := filepath.Abs(spec.Root)
	if err != nil {
		return err
	}
	if root == "/" {
		return &SetupError{Reason: "refusing / as a sandbox root: give the directory holding the image"}
	}
	if !strings.HasPrefix(spec.Path, "/") || len(spec.Args) == 0 {
		return &SetupError{Reason: fmt.Sprintf("command %q: give an absolute path inside the image and its argv", spec.Path)}
	}
	cfg, err := json.Marshal(config{Root: root, Hostname: spec.Hostname, Path: spec.Path, Args: spec.Args, Env: spec.Env, Dir: spec.Dir})
	if err != nil {
		return err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer cfgR.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		cfgW.Close()
		return err
	}
	defer statusR.Close()

	cmd := exec.CommandContext(ctx, selfExe)
	cmd.Args = []string{initArg0}
	cmd.Env = []string{initEnv}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{cfgR, statusW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: Namespaces,
		Setpgid:    true,
		// The daemon dying takes its builds with it.
		Pdeathsig: syscall.SIGKILL,
	}
	// The init is PID 1 of its namespace: killing it kills the build.
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second

	var runErr error
	started := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that started the init exits: this
		// goroutine keeps its thread until the init is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		if err := cmd.Start(); err != nil {
			runErr = &SetupError{Reason: fmt.Sprintf("starting the sandbox's init: %v", err)}
			cfgW.Close()
			statusW.Close()
			started <- false
			return
		}
		started <- true
		statusW.Close()
		go func() {
			cfgW.Write(cfg)
			cfgW.Close()
		}()
		runErr = cmd.Wait()
	}()
	if !<-started {
		<-done
		return runErr
	}
	// A binary whose main does not call Init would run as itself in the
	// namespaces: the init's first byte tells them apart.
	statusR.SetReadDeadline(time.Now().Add(helloTimeout))
	hello := make([]byte, 1)
	_, err = io.ReadFull(statusR, hello)
	statusR.SetReadDeadline(time.Time{})
	if err != nil || hello[0] != helloByte {
		cmd.Process.Kill()
		<-done
		exe, _ := os.Executable()
		return &SetupError{Reason: fmt.Sprintf("%s did not start as the sandbox's init (%v, %v): its main must call buildsandbox.Init when buildsandbox.IsInit() reports true", exe, err, runErr)}
	}
	<-done
	reason, _ := io.ReadAll(io.LimitReader(statusR, 64<<10))
	if len(reason) > 0 {
		return &SetupError{Reason: string(reason)}
	}
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), runErr)
	}
	return runErr
}
