package fctest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The fake firecracker executable: the test binary itself, run through a
// symlink named "firecracker" next to a configuration file. Its TestMain
// calls RunIfFake first, which notices the name and, instead of running
// tests, acts as Firecracker: `--version` prints the configured release,
// `--api-sock X` serves the stand-in on X (Config.Console is its stdout,
// the serial console) until the guest powers off after SendCtrlAltDel.
// Like Firecracker it leaves its socket files behind when it exits. It
// also exits when its configuration file disappears (the test's temporary
// directory was removed), so a test that forgets a VM leaves no process
// behind for long.

const (
	fakeName   = "firecracker"
	fakeConfig = "fctest.json"
)

// watchdogInterval is how often the fake process checks that its test
// still exists.
const watchdogInterval = 200 * time.Millisecond

// FakeBinary makes a fake `firecracker` executable playing cfg and returns
// its path. The test binary's TestMain must call RunIfFake first.
func FakeBinary(t testing.TB, cfg Config) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if _, err := parseVersion(cfg.Version); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, fakeName)
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fakeConfig), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return bin
}

func recordFile(dir string, pid int) string {
	return filepath.Join(dir, fmt.Sprintf("requests-%d.jsonl", pid))
}

// Recorded returns the requests the fake process pid, started through the
// FakeBinary bin, received so far.
func Recorded(bin string, pid int) ([]Request, error) {
	b, err := os.ReadFile(recordFile(filepath.Dir(bin), pid))
	if err != nil {
		return nil, err
	}
	var reqs []Request
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r Request
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("fctest: %s: %w", line, err)
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// RecordedAll returns the requests of every fake process started through
// the FakeBinary bin, by PID.
func RecordedAll(bin string) (map[int][]Request, error) {
	files, err := filepath.Glob(filepath.Join(filepath.Dir(bin), "requests-*.jsonl"))
	if err != nil {
		return nil, err
	}
	all := map[int][]Request{}
	for _, f := range files {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(f), "requests-%d.jsonl", &pid); err != nil {
			continue
		}
		reqs, err := Recorded(bin, pid)
		if err != nil {
			return nil, err
		}
		all[pid] = reqs
	}
	return all, nil
}

// RunIfFake runs the fake Firecracker and exits, when this process was
// started through a FakeBinary; otherwise it returns at once.
func RunIfFake() {
	if filepath.Base(os.Args[0]) != fakeName {
		return
	}
	cfgPath := filepath.Join(filepath.Dir(os.Args[0]), fakeConfig)
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return
	}
	os.Exit(runFake(cfgPath, b, os.Args[1:]))
}

var instanceIDRE = regexp.MustCompile(`^[\p{L}\p{N}-]{1,64}$`)

// valueFlags are the arguments of Firecracker's that take a value and the
// fake accepts (and, but for --api-sock and --id, ignores).
var valueFlags = map[string]bool{
	"--api-sock": true, "--id": true, "--start-time-us": true, "--start-time-cpu-us": true,
	"--parent-cpu-time-us": true, "--level": true, "--http-api-max-payload-size": true,
}

func runFake(cfgPath string, cfgJSON []byte, args []string) int {
	var cfg Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "fctest: reading %s: %v\n", cfgPath, err)
		return 1
	}
	vals := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--version" {
			fmt.Printf("Firecracker v%s\n\n", cfg.Version)
			return 0
		}
		name, val, hasVal := strings.Cut(a, "=")
		if !valueFlags[name] {
			fmt.Fprintf(os.Stderr, "Error: Arguments(UnexpectedArgument(%q))\n", name)
			return 1
		}
		if !hasVal {
			if i+1 >= len(args) {
				fmt.Fprintf(os.Stderr, "Error: Arguments(MissingValue(%q))\n", strings.TrimPrefix(name, "--"))
				return 1
			}
			i++
			val = args[i]
		}
		vals[name] = val
	}
	id := "anonymous-instance"
	if v, ok := vals["--id"]; ok {
		if !instanceIDRE.MatchString(v) {
			fmt.Fprintf(os.Stderr, "Error: InvalidInstanceId(%q)\n", v)
			return 1
		}
		id = v
	}
	sock := vals["--api-sock"]
	if sock == "" {
		sock = "/run/firecracker.socket"
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: RunWithApi(FailedToBindSocket): Failed to open the API socket at: %s. Check that it is not already used.\n", sock)
		return 1
	}
	ln.SetUnlinkOnClose(false)
	cfg.Console = os.Stdout
	rec, err := os.OpenFile(recordFile(filepath.Dir(cfgPath), os.Getpid()), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fctest:", err)
		return 1
	}
	cfg.Record = rec
	s, err := NewServer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Firecracker logs to stdout until a logger is configured.
	fmt.Printf("%s [%s:main] Running Firecracker v%s\n", time.Now().Format("2006-01-02T15:04:05.000000000"), id, s.version)
	go s.Serve(ln)
	t := time.NewTicker(watchdogInterval)
	defer t.Stop()
	for {
		select {
		case <-s.PoweredOff():
			return 0
		case <-t.C:
			if _, err := os.Stat(cfgPath); err != nil {
				fmt.Fprintf(os.Stderr, "fctest: %s is gone: the test ended; exiting\n", cfgPath)
				return 3
			}
		}
	}
}
