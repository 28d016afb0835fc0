package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
)

// sessionDaemon serves one session, "echo" (id ses-1) in VM demo, whose
// process ends on the signals in ends and ignores the others.
func sessionDaemon(t *testing.T, ends ...string) (*fakeDaemon, *[]string) {
	d := startFakeDaemon(t)
	var mu sync.Mutex
	var sent []string
	ses := api.Session{ID: "ses-1", Name: "echo", VM: "demo", State: api.SessionRunning, PID: 42}
	d.Mux.HandleFunc("GET /v1/vms/demo/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, http.StatusOK, ses)
	})
	d.Mux.HandleFunc("POST /v1/vms/demo/sessions/{id}/signal", func(w http.ResponseWriter, r *http.Request) {
		var req api.SignalSessionRequest
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, req.Signal)
		for _, e := range ends {
			if e == req.Signal {
				ses.State, ses.Signal = api.SessionExited, "SIG"+req.Signal
			}
		}
		writeJSON(w, http.StatusOK, ses)
	})
	d.Mux.HandleFunc("DELETE /v1/vms/demo/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, "rm "+r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	return d, &sent
}

// TestSessionStopKillRm: what stop, kill and rm print, and the signals
// they send, now that the policy lives in frontend.
func TestSessionStopKillRm(t *testing.T) {
	tests := []struct {
		name       string
		ends       []string
		args       []string
		wantOut    string
		wantErr    string
		wantSignal []string
	}{
		{"stop honoured", []string{"TERM"}, []string{"vm", "session", "stop", "demo", "echo"},
			"session echo exited (SIGTERM)\n", "", []string{"TERM"}},
		{"stop escalates", []string{"KILL"}, []string{"vm", "session", "stop", "demo", "echo", "--timeout", "1ms"},
			"session echo exited (SIGKILL)\n", "session echo still runs 1ms after SIGTERM: sending SIGKILL\n", []string{"TERM", "KILL"}},
		{"kill with a signal it ignores", nil, []string{"vm", "session", "kill", "demo", "echo", "--signal", "int"},
			"sent SIGINT to session echo (pid 42); it is still running\n", "", []string{"int"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, sent := sessionDaemon(t, tt.ends...)
			out, errb, code := d.run(t, tt.args...)
			if code != 0 || out != tt.wantOut || errb != tt.wantErr {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant stdout %q stderr %q", code, out, errb, tt.wantOut, tt.wantErr)
			}
			if strings.Join(*sent, ",") != strings.Join(tt.wantSignal, ",") {
				t.Errorf("signals %q, want %q", *sent, tt.wantSignal)
			}
		})
	}
	t.Run("rm forgets the cursor", func(t *testing.T) {
		d, sent := sessionDaemon(t)
		paths, err := config.DefaultPaths(config.MapEnv(d.Env), os.Getuid())
		if err != nil {
			t.Fatal(err)
		}
		cursor := filepath.Join(paths.StateDir, "attach", "demo", "ses-1")
		os.MkdirAll(filepath.Dir(cursor), 0o700)
		os.WriteFile(cursor, []byte("00000000000000000012\n"), 0o600)
		out, errb, code := d.run(t, "vm", "session", "rm", "demo", "echo")
		if code != 0 || out != "removed session echo\n" {
			t.Fatalf("exit %d stdout %q stderr %q", code, out, errb)
		}
		if _, err := os.Stat(cursor); !os.IsNotExist(err) {
			t.Errorf("cursor still there: %v", err)
		}
		if strings.Join(*sent, ",") != "rm ses-1" {
			t.Errorf("requests %q, want the removal by id", *sent)
		}
	})
}
