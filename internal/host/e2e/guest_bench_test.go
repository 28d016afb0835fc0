package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// benchVM boots a VM for a benchmark (outside the timer).
func benchVM(b *testing.B) (*env, *client.Client) {
	b.Helper()
	e := vmEnv(b)
	e.must("vm", "create", "--name", "bench", "--memory", "1GiB", "--disk", "2GiB")
	b.Cleanup(func() { e.runWith(e.extra, "vm", "delete", "bench") })
	return e, apiClient(b, e)
}

// BenchmarkWorkspacePrepare measures `vm workspace prepare` throughput
// (MB/s): a 32 MiB full_copy tree of 256 incompressible files, packed on
// the host, relayed by bangerd, extracted and synced by the agent.
func BenchmarkWorkspacePrepare(b *testing.B) {
	_, c := benchVM(b)
	dir := b.TempDir()
	const files, size = 256, 128 << 10
	buf := make([]byte, size)
	for i := range files {
		rand.Read(buf)
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%16))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.SetBytes(files * size)
	b.ResetTimer()
	for b.Loop() {
		pr, pw := io.Pipe()
		go func() {
			_, err := workspace.Pack(ctx, dir, workspace.ModeFullCopy, pw)
			pw.CloseWithError(err)
		}()
		res, err := c.PrepareWorkspace(ctx, "bench", api.PrepareWorkspaceRequest{}, pr)
		if err != nil {
			b.Fatal(err)
		}
		if res.Files != files {
			b.Fatalf("installed %d files, want %d", res.Files, files)
		}
	}
}

// BenchmarkAttachRoundTrip measures one line through an attached session
// and back: client → bangerd → agent → cat in the guest → agent → bangerd
// → client.
func BenchmarkAttachRoundTrip(b *testing.B) {
	_, c := benchVM(b)
	ctx := context.Background()
	if _, err := c.StartSession(ctx, "bench", api.StartSessionRequest{Name: "cat", Argv: []string{"cat"}}); err != nil {
		b.Fatal(err)
	}
	a, _, err := c.Attach(ctx, "bench", "cat", client.AttachOptions{Since: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	line := []byte("ping\n")
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Write(line); err != nil {
			b.Fatal(err)
		}
		var got []byte
		for !bytes.HasSuffix(got, line) {
			ch, err := a.Next()
			if err != nil {
				b.Fatal(err)
			}
			got = append(got, ch.Data...)
		}
	}
}

// BenchmarkExecRoundTrip measures `vm exec -- true` through the API: a
// stream opened, a process started in the guest, its exit status back.
func BenchmarkExecRoundTrip(b *testing.B) {
	_, c := benchVM(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		st, err := c.Exec(ctx, "bench", api.ExecRequest{Argv: []string{"true"}}, nil, io.Discard, io.Discard, nil)
		if err != nil || st.Code != 0 {
			b.Fatalf("exec true: %v %+v", err, st)
		}
	}
}

// pullBenchVM boots a VM whose workspace is a git checkout of 256 files,
// which the guest then changes: every file gets one line changed (edit:
// 16 KiB text files, an agent's usual work) or is rewritten whole with new
// incompressible bytes (rewrite: 128 KiB each, 32 MiB, the worst case for
// git's deltas); half the files are committed, half left uncommitted. It
// returns the client, the checkout and the bytes of the changed files.
func pullBenchVM(b *testing.B, rewrite bool) (*client.Client, string, int64) {
	e, c := benchVM(b)
	dir := b.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=b@example.com", "-c", "user.name=b"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	size := 16 << 10
	if rewrite {
		size = 128 << 10
	}
	raw := make([]byte, size)
	for i := range pullBenchFiles {
		rand.Read(raw)
		data := raw
		if !rewrite {
			// Text of 76-column lines, as source is.
			data = []byte(base64.StdEncoding.EncodeToString(raw)[:size])
			for j := 76; j < len(data); j += 77 {
				data[j] = '\n'
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "-qm", "base")
	ctx := context.Background()
	if _, err := frontend.PrepareWorkspace(ctx, c, "bench", dir, "", workspace.ModeGit); err != nil {
		b.Fatal(err)
	}
	change := `sed -i '10s/.*/a line the agent changed/' $f`
	if rewrite {
		change = fmt.Sprintf("head -c %d /dev/urandom > $f", size)
	}
	e.must("vm", "exec", "bench", "-w", "/root/repo", "--", "sh", "-ec", `
		for f in f*; do `+change+`; done
		git add f0* f1*
		git -c user.email=a@vm -c user.name=a commit -qm work`)
	return c, dir, int64(pullBenchFiles * size)
}

const pullBenchFiles = 256

// BenchmarkWorkspaceDiff measures `vm diff`: the guest makes its commit
// of uncommitted changes and compares 256 edited files with what was
// sent; the summary comes back through bangerd.
func BenchmarkWorkspaceDiff(b *testing.B) {
	c, _, _ := pullBenchVM(b, false)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		d, err := c.WorkspaceDiff(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Files) != pullBenchFiles || !d.Uncommitted || len(d.Commits) != 1 {
			b.Fatalf("diff: %d files, uncommitted %v, %d commits", len(d.Files), d.Uncommitted, len(d.Commits))
		}
	}
}

// BenchmarkWorkspacePull measures `vm pull` (MB/s of the changed files'
// size): the guest bundles its commit and one of its uncommitted changes,
// bangerd relays it, and the host checks it (index-pack --strict in a
// staging repository) and makes the branch. Edit: one line changed in
// each of 256 text files (4 MiB); rewrite: 32 MiB of new incompressible
// bytes.
func BenchmarkWorkspacePull(b *testing.B) {
	for _, tt := range []struct {
		name    string
		rewrite bool
	}{{"edit", false}, {"rewrite", true}} {
		b.Run(tt.name, func(b *testing.B) {
			c, dir, size := pullBenchVM(b, tt.rewrite)
			ctx := context.Background()
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				res, err := frontend.Pull(ctx, c, frontend.PullRequest{VM: "bench", Repo: dir, Force: true, MaxBytes: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Files) != pullBenchFiles || len(res.Commits) != 1 || !res.Uncommitted {
					b.Fatalf("pull: %d files, %d commits, uncommitted %v", len(res.Files), len(res.Commits), res.Uncommitted)
				}
			}
		})
	}
}
