package cli

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
)

// hostileTitle retitles the terminal window when printed raw.
const hostileTitle = "\x1b]0;pwned\x07"

// noEscapes fails when out holds a byte a terminal would act on.
func noEscapes(t *testing.T, what, out string) {
	t.Helper()
	for _, c := range []string{"\x1b", "\x07", "\r", "\u009b", "\u202e"} {
		if strings.Contains(out, c) {
			t.Errorf("%s holds the raw control %q: %q", what, c, out)
		}
	}
}

func hostileSession() api.Session {
	code := 1
	return api.Session{
		ID: "s-1" + hostileTitle, Name: "build" + hostileTitle, VM: "demo",
		Argv: []string{"make", "\x1b[2J\x1b[Hall"}, Cwd: "/root\x1b[8m", EnvKeys: []string{"K\u202eY"},
		State: api.SessionFailed, PID: 42, StartedAt: time.Now().Add(-time.Minute), ExitedAt: time.Now(),
		ExitCode: &code, Signal: "", Diagnostics: []string{"stderr: \x1b]52;c;cm0gLXJmIH4K\x07 oops"},
	}
}

// Guest-chosen strings in session output are shown escaped, never raw.
func TestSessionOutputEscapesGuestStrings(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantOut    []string // substrings of stdout
		wantErr    []string // substrings of stderr
		wantFailed bool
	}{
		{
			name:    "session list",
			args:    []string{"vm", "session", "list", "demo"},
			wantOut: []string{`build\x1b]0;pwned\x07`, `s-1\x1b]0;pwned\x07`, `make \x1b[2J\x1b[Hall`},
		},
		{
			name: "session show",
			args: []string{"vm", "session", "show", "demo", "build"},
			wantOut: []string{`name:        build\x1b]0;pwned\x07`, `cwd:         /root\x1b[8m`, `env keys:    K\u202eY`,
				`diagnostic:  stderr: \x1b]52;c;cm0gLXJmIH4K\x07 oops`},
		},
		{
			name:       "session start that fails at once",
			args:       []string{"vm", "session", "start", "demo", "--", "make"},
			wantOut:    []string{`name:        build\x1b]0;pwned\x07`},
			wantErr:    []string{`session build\x1b]0;pwned\x07 failed right after it started: stderr: \x1b]52;c;cm0gLXJmIH4K\x07 oops`},
			wantFailed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startFakeDaemon(t)
			d.Mux.HandleFunc("GET /v1/vms/demo/sessions", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, api.SessionList{Sessions: []api.Session{hostileSession()}})
			})
			d.Mux.HandleFunc("GET /v1/vms/demo/sessions/build", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, hostileSession())
			})
			d.Mux.HandleFunc("POST /v1/vms/demo/sessions", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, hostileSession())
			})
			stdout, stderr, code := d.run(t, tt.args...)
			if (code != 0) != tt.wantFailed {
				t.Fatalf("exit %d; stdout %q stderr %q", code, stdout, stderr)
			}
			noEscapes(t, "stdout", stdout)
			noEscapes(t, "stderr", stderr)
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// An error the agent words (here: refusing an exec) reaches the terminal
// escaped, on one line per line it had.
func TestAgentErrorIsEscaped(t *testing.T) {
	d := startFakeDaemon(t)
	d.Mux.HandleFunc("POST /v1/vms/demo/exec", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusBadRequest, api.Error{Code: api.CodeFailedPrecondition,
			Message: "exec: \"make\x1b[2J\x1b[31m\": not found in the guest's PATH\n\x1b]0;pwned\x07try again"})
	})
	_, stderr, code := d.run(t, "vm", "exec", "demo", "--", "make")
	if code == 0 {
		t.Fatalf("exit 0, stderr %q", stderr)
	}
	noEscapes(t, "stderr", stderr)
	want := "banger: exec: \"make\\x1b[2J\\x1b[31m\": not found in the guest's PATH\n\\x1b]0;pwned\\x07try again\n"
	if stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

// vm logs escapes the console on a terminal, and passes it raw with --raw
// or into a pipe.
func TestVMLogsConsole(t *testing.T) {
	const console = "[\x1b[0;32m  OK  \x1b[0m] Started ssh.\r\n" + hostileTitle + "login: "
	tests := []struct {
		name     string
		terminal bool
		args     []string
		want     string
	}{
		{"terminal", true, nil, "[  OK  ] Started ssh.\n" + `\x1b]0;pwned\x07` + "login: "},
		{"terminal, --raw", true, []string{"--raw"}, console},
		{"pipe", false, nil, console},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := isTerminal
			isTerminal = func(io.Writer) bool { return tt.terminal }
			t.Cleanup(func() { isTerminal = saved })
			d := startFakeDaemon(t)
			d.Mux.HandleFunc("GET /v1/vms/demo/console", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, console)
			})
			stdout, stderr, code := d.run(t, append([]string{"vm", "logs", "demo"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout = %q, want %q", stdout, tt.want)
			}
		})
	}
}
