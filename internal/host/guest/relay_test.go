package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// TestExecRelay runs commands through Service.Exec against banger-agent's
// real handler over a pipe: the stream the daemon splices to its client
// carries stdin, stdout and stderr apart, and the exit status.
func TestExecRelay(t *testing.T) {
	s, _, _ := setup(t)
	tests := []struct {
		name       string
		req        api.ExecRequest
		stdin      string
		wantOut    string
		wantErr    string
		wantStatus agentmux.ExitStatus
	}{
		{"exit code and both streams", api.ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}},
			"", "out\n", "err\n", agentmux.ExitStatus{Code: 3}},
		{"stdin reaches the command", api.ExecRequest{Argv: []string{"cat"}},
			"line one\nline two", "line one\nline two", "", agentmux.ExitStatus{}},
		{"env and cwd", api.ExecRequest{Argv: []string{"sh", "-c", "echo $GREETING; pwd"}, Env: []string{"GREETING=hi"}, Cwd: "/"},
			"", "hi\n/\n", "", agentmux.ExitStatus{}},
		{"a signal ends it", api.ExecRequest{Argv: []string{"sh", "-c", "kill -TERM $$"}},
			"", "", "", agentmux.ExitStatus{Code: -1, Signal: 15, SignalName: "SIGTERM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := s.Exec(ctx, "g", tt.req)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var out, errOut bytes.Buffer
			status, err := agentmux.RunExec(ctx, st, agentmux.ExecRequest{Argv: tt.req.Argv}, strings.NewReader(tt.stdin), &out, &errOut)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{out.String(), errOut.String()}
			if diff := cmp.Diff([]string{tt.wantOut, tt.wantErr}, got); diff != "" {
				t.Errorf("stdout, stderr (-want +got):\n%s", diff)
			}
			if status.Code != tt.wantStatus.Code || status.SignalName != tt.wantStatus.SignalName {
				t.Errorf("status %+v, want %+v", status, tt.wantStatus)
			}
		})
	}
}

// TestExecRefusals: what Exec refuses, and with which API code, before or
// by the agent.
func TestExecRefusals(t *testing.T) {
	s, f, _ := setup(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		vm      string
		argv    []string
		stopped bool
		code    *api.Error
		msg     string
	}{
		{"no command", "g", nil, false, api.ErrInvalidArgument, "argv is empty: exec needs a command to run"},
		{"command not found", "g", []string{"no-such-command-xyz"}, false, api.ErrFailedPrecondition, "no-such-command-xyz"},
		{"missing vm", "nope", []string{"true"}, false, api.ErrNotFound, `no VM "nope"`},
		{"stopped vm", "g", []string{"true"}, true, api.ErrFailedPrecondition, "VM g is stopped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.v.State = api.VMRunning
			if tt.stopped {
				f.v.State = api.VMStopped
			}
			st, err := s.Exec(ctx, tt.vm, api.ExecRequest{Argv: tt.argv})
			if st != nil {
				st.Close()
			}
			if !errors.Is(err, tt.code) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Errorf("got %v, want %s containing %q", err, tt.code.Code, tt.msg)
			}
		})
	}
}

// TestCopyRelay sends a tree into the "guest" (the agent runs in this
// process, so guest paths are this host's) and back out, and installs a
// workspace: what arrives is what was sent, and the counts the client
// prints are the agent's.
func TestCopyRelay(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "proj")
	files := map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta\n", "sub/deeper/c": "gamma"}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}

	// Copy in: into an existing directory, the tree lands under its name.
	dest := t.TempDir()
	var tarIn bytes.Buffer
	if _, err := workspace.PackPath(ctx, src, &tarIn); err != nil {
		t.Fatal(err)
	}
	res, err := s.CopyIn(ctx, "g", dest+"/./", &tarIn)
	if err != nil {
		t.Fatal(err)
	}
	want := api.TransferResult{Path: filepath.Join(dest, "proj"), Files: 3, Dirs: 3, Symlinks: 1, Bytes: int64(len("alpha\nbeta\ngamma"))}
	res.GuestElapsed = 0
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("copy in result (-want +got):\n%s", diff)
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(dest, "proj", name))
		if err != nil || string(b) != body {
			t.Errorf("%s in the guest: %q, %v; want %q", name, b, err, body)
		}
	}
	if l, err := os.Readlink(filepath.Join(dest, "proj", "link")); err != nil || l != "a.txt" {
		t.Errorf("symlink in the guest: %q, %v", l, err)
	}

	// Copy out: the stream unpacks to the same tree.
	var tarOut bytes.Buffer
	if err := s.CopyOut(ctx, "g", filepath.Join(dest, "proj"), &tarOut); err != nil {
		t.Fatal(err)
	}
	back := t.TempDir()
	if _, _, err := workspace.Place(ctx, &tarOut, back, workspace.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(back, "proj", name))
		if err != nil || string(b) != body {
			t.Errorf("%s copied out: %q, %v; want %q", name, b, err, body)
		}
	}

	// A workspace replaces the directory's content.
	ws := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ws, "stale"), []byte("old"), 0o644)
	var wsTar bytes.Buffer
	if _, err := workspace.Pack(ctx, src, workspace.ModeFullCopy, &wsTar); err != nil {
		t.Fatal(err)
	}
	wres, err := s.PrepareWorkspace(ctx, "g", api.PrepareWorkspaceRequest{Dir: ws}, &wsTar)
	if err != nil {
		t.Fatal(err)
	}
	if wres.Path != ws || wres.Files != 3 {
		t.Errorf("workspace result %+v, want 3 files at %s", wres, ws)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "sub", "deeper", "c")); err != nil || string(b) != "gamma" {
		t.Errorf("workspace file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ws, "stale")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file from before the workspace survived: %v", err)
	}
}

// TestCopyRefusals: bad guest paths are refused before the agent is
// asked; the agent's refusals come back with API codes; a copy out of a
// missing path is not_found.
func TestCopyRefusals(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		code *api.Error
		msg  string
	}{
		{"copy in to a relative path", func() error {
			_, err := s.CopyIn(ctx, "g", "tmp/x", strings.NewReader(""))
			return err
		}, api.ErrInvalidArgument, `path "tmp/x" is not absolute: give a guest path such as /root/repo`},
		{"copy out of a relative path", func() error { return s.CopyOut(ctx, "g", "etc", io.Discard) },
			api.ErrInvalidArgument, `path "etc" is not absolute`},
		{"workspace at a relative path", func() error {
			_, err := s.PrepareWorkspace(ctx, "g", api.PrepareWorkspaceRequest{Dir: "repo"}, strings.NewReader(""))
			return err
		}, api.ErrInvalidArgument, `dir "repo" is not absolute: give a guest path such as /root/repo`},
		{"copy into a missing vm", func() error {
			_, err := s.CopyIn(ctx, "nope", "/tmp", strings.NewReader(""))
			return err
		}, api.ErrNotFound, `no VM "nope"`},
		// The agent files a missing path under invalid_argument (its
		// codeFor maps fs.ErrNotExist so); the message names the path.
		{"copy out of a missing path", func() error {
			return s.CopyOut(ctx, "g", filepath.Join(t.TempDir(), "absent"), io.Discard)
		}, api.ErrInvalidArgument, "absent: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.code) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Errorf("got %v, want %s containing %q", err, tt.code.Code, tt.msg)
			}
			// A relative path is the request's fault: the error names
			// the field (query parameter) and what it accepts.
			if field, _, _ := strings.Cut(tt.msg, " "); strings.Contains(tt.msg, "is not absolute") {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Field != field || ae.Allowed != AllowedGuestPath {
					t.Errorf("got %#v, want field %q allowed %q", err, field, AllowedGuestPath)
				}
			}
		})
	}
}

// TestCopyInOfGarbageLeavesTheTarget: a stream that is not tar is
// refused as an API error naming the problem, and the target directory
// is left as it was.
func TestCopyInOfGarbageLeavesTheTarget(t *testing.T) {
	s, _, _ := setup(t)
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "keep"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.CopyIn(context.Background(), "g", dest, strings.NewReader(strings.Repeat("not a tar stream ", 64)))
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "invalid tar header") || !strings.Contains(ae.Message, "left unchanged") {
		t.Fatalf("got %v, want an API error naming the bad header and the unchanged target", err)
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 1 || entries[0].Name() != "keep" {
		t.Errorf("target after a refused copy: %v", entries)
	}
}

func TestGuestPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/root/repo", "/root/repo"},
		{"/root/repo/", "/root/repo"},
		{"/root/../etc//x", "/etc/x"},
		{"/", "/"},
	}
	for _, tt := range tests {
		got, err := guestPath("path", tt.in)
		if err != nil || got != tt.want {
			t.Errorf("guestPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "root", "./x", "../etc"} {
		if _, err := guestPath("path", bad); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("guestPath(%q) = %v, want invalid_argument", bad, err)
		}
	}
}

// TestAPIError: the agent's codes become the API's, so a front end can
// tell a missing file from a broken agent.
func TestAPIError(t *testing.T) {
	plain := errors.New("connection reset")
	tests := []struct {
		in   error
		want *api.Error
	}{
		{&agentmux.Error{Code: "not_found", Message: "no /x"}, &api.Error{Code: api.CodeNotFound, Message: "no /x"}},
		{&agentmux.Error{Code: "already_exists", Message: "name taken"}, &api.Error{Code: api.CodeAlreadyExists, Message: "name taken"}},
		{&agentmux.Error{Code: "failed_precondition", Message: "cwd gone"}, &api.Error{Code: api.CodeFailedPrecondition, Message: "cwd gone"}},
		{&agentmux.Error{Code: "invalid_argument", Message: "bad"}, &api.Error{Code: api.CodeInvalidArgument, Message: "bad"}},
		{&agentmux.Error{Code: agentmux.CodeBadRequest, Message: "bad frame"}, &api.Error{Code: api.CodeInvalidArgument, Message: "bad frame"}},
		{&agentmux.Error{Code: agentmux.CodeUnknownType, Message: "old agent"}, &api.Error{Code: api.CodeUnimplemented, Message: "old agent"}},
		{&agentmux.Error{Code: agentmux.CodeExecFailed, Message: "no such file"}, &api.Error{Code: api.CodeFailedPrecondition, Message: "no such file"}},
		{&agentmux.Error{Code: "permission_denied", Message: "not yours"}, &api.Error{Code: api.CodeInternal, Message: "the guest agent failed: not yours"}},
		{fmt.Errorf("calling: %w", &agentmux.Error{Code: "weird", Message: "?"}), &api.Error{Code: api.CodeInternal, Message: "the guest agent failed: ?"}},
	}
	for _, tt := range tests {
		got := apiError(tt.in)
		var ae *api.Error
		if !errors.As(got, &ae) {
			t.Errorf("apiError(%v) = %T, want *api.Error", tt.in, got)
			continue
		}
		if diff := cmp.Diff(tt.want, ae); diff != "" {
			t.Errorf("apiError(%v) (-want +got):\n%s", tt.in, diff)
		}
	}
	if got := apiError(plain); got != plain {
		t.Errorf("a non-agent error was changed: %v", got)
	}
	if apiError(nil) != nil {
		t.Error("apiError(nil) is not nil")
	}
}
