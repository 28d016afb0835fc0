package buildsandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The init's contract with Run: it is the current binary re-executed with
// argv[0] initArg0 and initEnv set, its configuration (a config, JSON) on
// file descriptor 3, and file descriptor 4 for its status: helloByte
// first, then the error that stopped the setup, if one did. When the
// command has started, fd 4 is closed after the hello alone.
const (
	initArg0  = "banger-build-sandbox"
	initEnv   = "BANGER_BUILD_SANDBOX=init"
	configFD  = 3
	statusFD  = 4
	helloByte = 'B'
	// helloTimeout bounds the wait for the hello (a binary that does not
	// call Init never sends it); starting a Go binary takes milliseconds.
	helloTimeout = 30 * time.Second
)

// setupFailed is the init's exit status when the sandbox could not be set
// up (the reason is on the status descriptor).
const setupFailed = 125

// config is what Run sends the init.
type config struct {
	Root     string
	Hostname string
	Path     string   // the program, a path inside the root
	Args     []string // argv, Args[0] included
	Env      []string
	Dir      string
}

// IsInit reports whether this process is a sandbox's init started by Run.
// A binary that builds images (bangerd, and test binaries that run Run)
// checks it first thing in main and then returns Init's status:
//
//	if buildsandbox.IsInit() {
//		os.Exit(buildsandbox.Init())
//	}
func IsInit() bool {
	return len(os.Args) > 0 && os.Args[0] == initArg0 && os.Getenv("BANGER_BUILD_SANDBOX") == "init"
}

// Init sets the sandbox up (see the package documentation), runs the
// command as its only child and returns the command's exit status (128
// plus the signal's number when a signal ended it), or setupFailed.
func Init() int {
	// Capabilities and no_new_privs belong to a thread: they are dropped on
	// this one and the command is forked from it.
	runtime.LockOSThread()
	// The command must not inherit the status pipe.
	unix.CloseOnExec(statusFD)
	status := os.NewFile(statusFD, "status")
	if _, err := status.Write([]byte{helloByte}); err != nil {
		return setupFailed
	}
	fail := func(err error) int {
		fmt.Fprintf(status, "%v", err)
		status.Close()
		return setupFailed
	}
	cfg, err := readConfig(os.NewFile(configFD, "config"))
	if err != nil {
		return fail(err)
	}
	// Not dumpable: the command cannot open /proc/1/exe (the host's
	// binary), /proc/1/fd or ptrace the init, whatever its capabilities.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("making the init undumpable: %w", err))
	}
	if err := enterRoot(cfg.Root); err != nil {
		return fail(err)
	}
	if err := apply(sysCalls{}, Plan(cfg.Hostname)); err != nil {
		return fail(fmt.Errorf("setting up the sandbox in %s: %w", cfg.Root, err))
	}
	if err := dropCapabilities(Kept, lastCap()); err != nil {
		return fail(err)
	}
	if err := installFilter(); err != nil {
		return fail(err)
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	dir := cfg.Dir
	if dir == "" {
		dir = "/"
	}
	pid, err := syscall.ForkExec(cfg.Path, cfg.Args, &syscall.ProcAttr{
		Dir:   dir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return fail(fmt.Errorf("starting %s in the image: %w", cfg.Path, err))
	}
	status.Close()
	go func() {
		for s := range signals {
			syscall.Kill(-pid, s.(syscall.Signal))
		}
	}()
	return reap(pid)
}

func readConfig(f *os.File) (config, error) {
	var cfg config
	defer f.Close()
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("reading the sandbox's configuration: %w", err)
	}
	if cfg.Root == "" || cfg.Root[0] != '/' || cfg.Root == "/" {
		return cfg, fmt.Errorf("sandbox root %q: give the absolute path of an image's root directory", cfg.Root)
	}
	if cfg.Path == "" || len(cfg.Args) == 0 {
		return cfg, errors.New("no command given to the sandbox")
	}
	return cfg, nil
}

// reap waits for children (the command and whatever was orphaned to the
// init) until the command exits, and returns its exit status.
func reap(pid int) int {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return setupFailed
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
	}
}
