package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// workdiffSession is a host session with a real agent (NewGuest) over a
// pipe; the agent keeps its full_copy bases below root.
func workdiffSession(ctx context.Context, t *testing.T, root string) *agentmux.Session {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed on this host: vm diff and vm pull shell out to git in the guest")
	}
	g, err := NewGuest(filepath.Join(root, "sessions"), testKey, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	host, guest := net.Pipe()
	go g.Serve(ctx, guest)
	t.Cleanup(func() { host.Close(); guest.Close() })
	sess, err := agentmux.Upgrade(ctx, host, testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func params(t *testing.T, v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A full_copy workspace put with its params is recorded as the base: a
// changes get lists what the guest changed since.
func TestWorkspacePutRecordsFullCopyBase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := t.TempDir()
	sess := workdiffSession(ctx, t, root)
	src := filepath.Join(root, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a\n"), 0o644)
	pr, pw := io.Pipe()
	go func() { _, err := workspace.Pack(ctx, src, workspace.ModeFullCopy, pw); pw.CloseWithError(err) }()
	dir := filepath.Join(root, "repo")
	var res agentproto.TransferResult
	put := agentmux.Transfer{Op: agentproto.OpWorkspace, Path: dir, Params: params(t, agentproto.WorkspaceParams{Mode: "full_copy"})}
	if err := sess.Put(ctx, put, pr, &res); err != nil {
		t.Fatal(err)
	}
	if bases, _ := filepath.Glob(filepath.Join(root, "workspaces", "*.git")); len(bases) != 1 {
		t.Errorf("bases recorded: %v, want one", bases)
	}
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\nb\n"), 0o644)

	var out bytes.Buffer
	get := agentmux.Transfer{Op: agentproto.OpChanges, Path: dir, Params: params(t, agentproto.ChangesParams{Mode: "full_copy", Format: agentproto.ChangesSummary})}
	if err := sess.Get(ctx, get, &out); err != nil {
		t.Fatal(err)
	}
	var ch agentproto.Changes
	if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if len(ch.Files) != 1 || ch.Files[0] != (agentproto.ChangedFile{Path: "a.txt", Status: "modified", Added: 1}) {
		t.Errorf("changes: %+v", ch)
	}

	// A put without params (an older host: git mode) forgets the base.
	pr, pw = io.Pipe()
	go func() { _, err := workspace.Pack(ctx, src, workspace.ModeFullCopy, pw); pw.CloseWithError(err) }()
	if err := sess.Put(ctx, agentmux.Transfer{Op: agentproto.OpWorkspace, Path: dir}, pr, &res); err != nil {
		t.Fatal(err)
	}
	err := sess.Get(ctx, get, io.Discard)
	var e *agentmux.Error
	if !errors.As(err, &e) || e.Code != codePrecondition || !strings.Contains(e.Message, "banger vm workspace prepare") {
		t.Errorf("changes after a git-mode put: %v, want failed_precondition naming prepare", err)
	}
}

// A git workspace: the summary and the bundle come through agentmux;
// bad params are bad_request naming what is wrong.
func TestChangesAndBundleGets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := t.TempDir()
	sess := workdiffSession(ctx, t, root)
	dir := filepath.Join(root, "repo")
	runGit(t, root, "init", "-q", dir)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	runGit(t, dir, "add", ".")
	runGit(t, dir, "commit", "-q", "-m", "first")
	sent := runGit(t, dir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "new.txt"), []byte("new\n"), 0o644)

	var out bytes.Buffer
	get := agentmux.Transfer{Op: agentproto.OpChanges, Path: dir, Params: params(t, agentproto.ChangesParams{Base: sent, Format: agentproto.ChangesSummary, VM: "vm1"})}
	if err := sess.Get(ctx, get, &out); err != nil {
		t.Fatal(err)
	}
	var ch agentproto.Changes
	if err := json.Unmarshal(out.Bytes(), &ch); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if ch.Base != sent || ch.Head != sent || ch.Work == "" || len(ch.Files) != 1 || ch.Files[0].Path != "new.txt" || ch.Files[0].Status != "added" {
		t.Errorf("changes: %+v", ch)
	}

	out.Reset()
	get = agentmux.Transfer{Op: agentproto.OpBundle, Path: dir, Params: params(t, agentproto.BundleParams{Have: []string{sent}, VM: "vm1"})}
	if err := sess.Get(ctx, get, &out); err != nil {
		t.Fatal(err)
	}
	if want := "# v2 git bundle\n-" + sent + "\n" + sent + " refs/banger/head\n"; !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), " refs/banger/work\n\nPACK") {
		t.Errorf("bundle starts %q", out.String()[:min(out.Len(), 200)])
	}

	refused := []struct {
		name string
		req  agentmux.Transfer
		code string
		says string
	}{
		{"unknown format", agentmux.Transfer{Op: agentproto.OpChanges, Path: dir, Params: json.RawMessage(`{"format":"zip"}`)}, agentmux.CodeBadRequest, `want "summary", "patch" or "files"`},
		{"params of the wrong shape", agentmux.Transfer{Op: agentproto.OpBundle, Path: dir, Params: json.RawMessage(`{"have":"x"}`)}, agentmux.CodeBadRequest, "bad params"},
		{"short have", agentmux.Transfer{Op: agentproto.OpBundle, Path: dir, Params: json.RawMessage(`{"have":["abc"]}`)}, agentmux.CodeBadRequest, "not a full commit id"},
		{"unknown base", agentmux.Transfer{Op: agentproto.OpChanges, Path: dir, Params: params(t, agentproto.ChangesParams{Base: strings.Repeat("2", 40), Format: "summary"})}, codePrecondition, "banger vm workspace prepare"},
		{"over the limit", agentmux.Transfer{Op: agentproto.OpBundle, Path: dir, Params: params(t, agentproto.BundleParams{MaxBytes: 50})}, codePrecondition, "pull.max_size"},
		{"unknown op", agentmux.Transfer{Op: "tarball", Path: dir}, agentmux.CodeBadRequest, `want "copy", "changes" or "bundle"`},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := sess.Get(ctx, c.req, &out)
			var e *agentmux.Error
			if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Message, c.says) {
				t.Errorf("error %v: want code %s saying %q", err, c.code, c.says)
			}
			if out.Len() != 0 {
				t.Errorf("%d bytes came before the refusal", out.Len())
			}
		})
	}
}
