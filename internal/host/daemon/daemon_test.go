package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/operation"
)

// The test binary doubles as two helper programs, chosen by environment:
// a bangerd whose doctor host blocks forever (to crash it mid-operation),
// and a client that runs under another uid.
const helperEnv = "BANGER_DAEMON_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "blocking-daemon":
		os.Exit(runBlockingDaemon())
	case "dial":
		os.Exit(dialAsOtherUser())
	}
	os.Exit(m.Run())
}

// blockingHost is a doctor host whose KVM check never returns, so a deep
// doctor operation stays in its first stage until the process dies.
type blockingHost struct{ doctor.System }

func (blockingHost) KVMDevice() error { select {} }

func runBlockingDaemon() int {
	root := os.Getenv("BANGER_HOME")
	cfg := daemontest.Config(&nopTB{}, root)
	if err := daemon.Run(context.Background(), daemon.Options{Config: cfg, Host: blockingHost{}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// nopTB lets the helper process reuse daemontest.Config outside a test.
type nopTB struct{ testing.TB }

func (*nopTB) Helper()               {}
func (*nopTB) Fatal(args ...any)     { fmt.Fprintln(os.Stderr, args...); os.Exit(1) }
func (*nopTB) Cleanup(func())        {}
func (*nopTB) Fatalf(string, ...any) { os.Exit(1) }

func dialAsOtherUser() int {
	sock := os.Getenv("BANGER_SOCKET")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://bangerd/v1/daemon")
	if err != nil {
		fmt.Println("dial error:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, body)
	return 0
}

func TestAPIErrorsRoundTrip(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want *api.Error
		msg  string
	}{
		{"unknown operation", func() error { _, err := d.Client.Operation(ctx, "op-nope"); return err },
			api.ErrNotFound, `no operation "op-nope": list operations with ` + "`banger operation list`"},
		{"cancel unknown operation", func() error { return d.Client.CancelOperation(ctx, "op-nope", "test") },
			api.ErrNotFound, `no operation "op-nope"`},
		{"bad deep doctor timeout", func() error {
			_, err := d.Client.BeginDeepDoctor(ctx, api.DeepDoctorRequest{ProbeTimeout: api.Duration(-time.Second)})
			return err
		}, api.ErrInvalidArgument, "probe_timeout_ms -1s is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want code %s", err, tt.want.Code)
			}
			var ae *api.Error
			if !errors.As(err, &ae) || !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestPrivateFilesAndCleanShutdown(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	p := d.Config.Paths
	for path, want := range map[string]os.FileMode{
		p.Socket():   os.ModeSocket | 0o600,
		p.RuntimeDir: os.ModeDir | 0o700,
		p.DBFile():   0o600,
		p.LogFile():  0o600,
		p.PIDFile():  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{p.Socket(), p.PIDFile()} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after shutdown", gone)
		}
	}
	if _, err := d.Client.DaemonStatus(context.Background()); !client.IsNotRunning(err) {
		t.Errorf("status after stop: %v, want not running", err)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	err := daemon.Run(context.Background(), daemon.Options{Config: d.Config})
	if err == nil || !strings.Contains(err.Error(), "another bangerd is already running") {
		t.Fatalf("second daemon: %v, want refusal", err)
	}
	if _, err := d.Client.DaemonStatus(context.Background()); err != nil {
		t.Errorf("first daemon hurt by the second: %v", err)
	}
}

// An operation that was running when the daemon died is failed, with the
// reason, by the next daemon, and its open stage is closed.
func TestOperationInterruptedByCrash(t *testing.T) {
	root := daemontest.ShortTempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=blocking-daemon", "BANGER_HOME="+root)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	cfg := daemontest.Config(t, root)
	cl := client.New(cfg.Paths.Socket())
	defer cl.Close()
	ctx := context.Background()
	waitFor(t, func() bool { _, err := cl.DaemonStatus(ctx); return err == nil })

	op, err := cl.BeginDeepDoctor(ctx, api.DeepDoctorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { got, _ := cl.Operation(ctx, op.ID); return len(got.Stages) > 0 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	d := daemontest.Start(t, daemontest.Options{Root: root})
	got, err := d.Client.Operation(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.OperationFailed || got.Error == nil || got.Error.Message != operation.InterruptedReason {
		t.Fatalf("after restart: state %s error %+v, want failed: %q", got.State, got.Error, operation.InterruptedReason)
	}
	for _, st := range got.Stages {
		if st.FinishedAt.IsZero() || st.Detail != "interrupted" {
			t.Errorf("stage %+v not closed as interrupted", st)
		}
	}
	// Streaming a finished operation ends at once with its final state.
	final, err := d.Client.WatchOperation(ctx, op.ID, nil)
	if err != nil || final.State != api.OperationFailed {
		t.Errorf("watch after restart: %v %+v", err, final.State)
	}
}

// Another user reaching the socket (here: it was made world-accessible) is
// refused by the peer-credential check with an error that says what to do.
func TestPeerCredentialCheck(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	d := daemontest.Start(t, daemontest.Options{})
	p := d.Config.Paths
	for _, dir := range []string{d.Root, p.RuntimeDir} {
		os.Chmod(dir, 0o755)
	}
	os.Chmod(p.Socket(), 0o666)
	// The test binary must be executable by the other user.
	binDir := daemontest.ShortTempDir(t)
	os.Chmod(binDir, 0o755)
	bin := filepath.Join(binDir, "helper")
	copyFile(t, os.Args[0], bin)

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{helperEnv + "=dial", "BANGER_SOCKET=" + p.Socket()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	got := string(out)
	if !strings.HasPrefix(got, "403 ") || !strings.Contains(got, `"code":"permission_denied"`) ||
		!strings.Contains(got, "serves uid 0 only and you are uid 65534") {
		t.Fatalf("other user got %q, want a 403 permission_denied naming both uids", got)
	}
	// The owner is still served.
	if _, err := d.Client.DaemonStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	// The in-process daemon set a private umask; be explicit.
	os.Chmod(dst, 0o755)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
