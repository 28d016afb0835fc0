package cli

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
)

// TestDiffRendering: what vm diff, vm diff -p and vm show print from a
// daemon's answers, where every path, subject and author came from a
// guest that may be hostile (a terminal title sequence in each), and how
// vm pull refuses a VM with nothing sent.
func TestDiffRendering(t *testing.T) {
	d := startFakeDaemon(t)
	now := time.Now()
	ws := api.Workspace{Dir: "/root/repo", Mode: api.WorkspaceGit, HostPath: "/src/project", Head: strings.Repeat("ab", 20), Sent: strings.Repeat("cd", 20), PreparedAt: now.Add(-5 * time.Minute)}
	diff := api.WorkspaceDiff{VM: "demo", Workspace: ws, Head: strings.Repeat("ef", 20), Uncommitted: true,
		Commits: []api.WorkspaceCommit{{ID: strings.Repeat("12", 20), Subject: "agent: fix" + hostileTitle, Author: "Agent <a@vm>" + hostileTitle, Time: now.Add(-time.Minute)}},
		Files: []api.WorkspaceFile{
			{Path: "src/main.go", Status: api.FileModified, Added: 90, Deleted: 10},
			{Path: "evil" + hostileTitle + ".txt", Status: api.FileAdded, Added: 1},
			{Path: "logo.png", Status: api.FileAdded, Binary: true},
			{Path: "new.go", OldPath: "old.go", Status: api.FileRenamed, Added: 2, Deleted: 2},
		},
		Added: 93, Deleted: 12,
	}
	demo := api.VM{Name: "demo", State: api.VMRunning, Workspace: &ws, CreatedAt: now}
	bare := api.VM{Name: "bare", State: api.VMRunning, CreatedAt: now}
	d.Mux.HandleFunc("GET /v1/vms/demo", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, demo) })
	d.Mux.HandleFunc("GET /v1/vms/bare", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, bare) })
	var pathspec []string
	d.Mux.HandleFunc("GET /v1/vms/demo/workspace/diff", func(w http.ResponseWriter, r *http.Request) {
		pathspec = r.URL.Query()["path"]
		if r.URL.Query().Get("format") == "patch" {
			w.Header().Set("Content-Type", api.ContentTypePatch)
			io.WriteString(w, "+a line"+hostileTitle+"\n")
			return
		}
		writeJSON(w, http.StatusOK, diff)
	})
	tests := []struct {
		name     string
		terminal bool
		args     []string
		want     []string // lines (after collapsing runs of spaces) stdout must hold
		stderr   string
		pathspec []string
	}{
		{"diffstat", false, []string{"vm", "diff", "demo", "--", "src/", "*.go"}, []string{
			"demo:/root/repo, sent from /src/project at abababababab (git mode, 5m ago)",
			"1 commit in the guest:",
			`121212121212 agent: fix\x1b]0;pwned\x07 (Agent <a@vm>\x1b]0;pwned\x07, 1m ago)`,
			"and changes not committed in the guest (untracked files included)",
			"src/main.go | 100 ++++++++++++++++++++++++++++++++++++----",
			`evil\x1b]0;pwned\x07.txt | 1 +`,
			"logo.png | Bin",
			"old.go => new.go | 4 +-",
			"4 files changed, 93 insertions(+), 12 deletions(-)",
		}, "", []string{"src/", "*.go"}},
		{"patch to a pipe is the bytes", false, []string{"vm", "diff", "demo", "-p"}, []string{"+a line" + hostileTitle}, "", nil},
		{"patch to a terminal is escaped", true, []string{"vm", "diff", "demo", "-p"}, []string{`+a line\x1b]0;pwned\x07`}, "", nil},
		{"vm show names the workspace", false, []string{"vm", "show", "demo"}, []string{
			"workspace /root/repo from /src/project at abababababab (git mode, sent 5m ago; `banger vm diff demo`)"}, "", nil},
		{"pull of a VM with nothing sent", false, []string{"vm", "pull", "bare"}, nil,
			"nothing was sent into the workspace of VM bare: send a checkout with `banger vm workspace prepare bare [PATH]`", nil},
		{"pull flags that do not go together", false, []string{"vm", "pull", "demo", "--apply", "--branch", "x"}, nil,
			"--apply changes the working tree instead of making a branch", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := isTerminal
			isTerminal = func(io.Writer) bool { return tt.terminal }
			t.Cleanup(func() { isTerminal = saved })
			pathspec = nil
			stdout, stderr, code := d.run(t, tt.args...)
			if tt.stderr != "" {
				if code == 0 || !strings.Contains(stderr, tt.stderr) {
					t.Errorf("exit %d, stderr %q, want it to hold %q", code, stderr, tt.stderr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(stdout, "\n") {
				lines[strings.Join(strings.Fields(l), " ")] = true
			}
			for _, w := range tt.want {
				if !lines[strings.Join(strings.Fields(w), " ")] {
					t.Errorf("stdout lacks the line %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout, hostileTitle) != (tt.name == "patch to a pipe is the bytes") {
				t.Errorf("raw escape sequence in stdout: %q", stdout)
			}
			if strings.Join(pathspec, ",") != strings.Join(tt.pathspec, ",") {
				t.Errorf("pathspec sent %q, want %q", pathspec, tt.pathspec)
			}
		})
	}
}
