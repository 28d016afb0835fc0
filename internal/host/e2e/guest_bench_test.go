package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
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
