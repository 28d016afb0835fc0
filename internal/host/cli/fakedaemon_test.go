package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// fakeDaemon answers the CLI on the API socket of a fresh BANGER_HOME
// with handlers a test registers, so a command runs its real client and
// output code against answers a hostile guest could cause.
type fakeDaemon struct {
	Mux  *http.ServeMux
	Env  map[string]string
	Home string // the user's HOME
}

// fakeDaemonBin is what the fake status says the daemon runs, so the CLI
// takes it for current and never starts or restarts one.
const fakeDaemonBin = "/bin/true"

func startFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	// A short root: a Unix socket path holds at most 107 bytes.
	root, err := os.MkdirTemp("", "bgc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	d := &fakeDaemon{Mux: http.NewServeMux(), Home: t.TempDir()}
	d.Env = map[string]string{config.EnvHome: root, "HOME": d.Home}
	paths, err := config.DefaultPaths(config.MapEnv(d.Env), os.Getuid())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(paths.Socket()), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", paths.Socket())
	if err != nil {
		t.Fatal(err)
	}
	d.Mux.HandleFunc("GET /"+api.Version+"/daemon", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.DaemonStatus{
			PID: os.Getpid(), UID: os.Getuid(), Socket: paths.Socket(),
			Executable: fakeDaemonBin, ExecutableStamp: buildinfo.FileStamp(fakeDaemonBin),
		})
	})
	srv := &http.Server{Handler: d.Mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d
}

// run runs the CLI against the fake daemon.
func (d *fakeDaemon) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errb, Env: config.MapEnv(d.Env), UID: os.Getuid(), DaemonBin: fakeDaemonBin}
	code = Run(context.Background(), args, app)
	return out.String(), errb.String(), code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeAPIError answers as the daemon does when it (or the agent) refuses.
func writeAPIError(w http.ResponseWriter, status int, e api.Error) {
	writeJSON(w, status, api.ErrorBody{Error: &e})
}
