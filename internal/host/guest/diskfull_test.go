package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/loopfs"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// TestWorkspaceOnAFullGuestDisk: workspace prepare streams the tar from
// the client through the daemon straight to the agent, so nothing of it
// is written on the host; the disk that can fill is the guest's. Here
// the agent runs in this process (setup) and the guest directory is on
// a small filesystem of the test's own: a workspace larger than its free
// space fails with a failed_precondition error saying the guest's disk
// is full and what to do, the previous workspace stays as it was, no
// staging directory remains, and a workspace that fits is installed
// after. vm cp into the guest (CopyIn, workspace.Place) is the same.
func TestWorkspaceOnAFullGuestDisk(t *testing.T) {
	s, _, _ := setup(t)
	ctx := context.Background()
	mnt := loopfs.Mount(t, 64<<20)
	ws := filepath.Join(mnt, "repo")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "old.txt"), []byte("the previous workspace\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loopfs.Fill(t, mnt, 8<<20)

	skipFill := func(rel string) bool { return strings.HasPrefix(rel, ".loopfs-fill-") }
	before := loopfs.Tree(t, mnt, skipFill)
	blob := func(n int) string {
		src := filepath.Join(t.TempDir(), "src")
		if err := os.Mkdir(src, 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(src, "blob"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return src
	}
	workspaceOf := func(n int) *bytes.Buffer {
		var buf bytes.Buffer
		if _, err := workspace.Pack(ctx, blob(n), workspace.ModeFullCopy, &buf); err != nil {
			t.Fatal(err)
		}
		return &buf
	}
	copyOf := func(n int) *bytes.Buffer {
		var buf bytes.Buffer
		if _, err := workspace.PackPath(ctx, blob(n), &buf); err != nil {
			t.Fatal(err)
		}
		return &buf
	}
	tests := []struct {
		name  string
		call  func() error
		parts []string
	}{
		{"workspace prepare", func() error {
			_, err := s.PrepareWorkspace(ctx, "g", api.PrepareWorkspaceRequest{Dir: ws}, workspaceOf(16<<20))
			return err
		}, []string{"extracting workspace into " + ws + " (left unchanged)", "the filesystem holding " + mnt + " had "}},
		{"vm cp into the guest", func() error {
			_, err := s.CopyIn(ctx, "g", ws+"/", copyOf(16<<20))
			return err
		}, []string{"copying to " + ws + " (left unchanged)", "the filesystem holding " + ws + " had "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			t.Logf("16MiB with 8MiB free: %v", err)
			if !errors.Is(err, api.ErrFailedPrecondition) {
				t.Errorf("16MiB with 8MiB free: %v, want failed_precondition", err)
			}
			if strings.Contains(fmt.Sprint(err), "the guest agent failed") {
				t.Errorf("a full guest disk reads as the agent's failure: %v", err)
			}
			for _, p := range append(tt.parts, "workspace too large for the free space", "free space there (in a VM: remove files, or give it a larger disk_bytes)", "no space left on device") {
				if err != nil && !strings.Contains(err.Error(), p) {
					t.Errorf("%q does not say %q", err, p)
				}
			}
			// What was free is rounded down: just under 8MiB.
			if err != nil && !regexp.MustCompile(` had (7\.[0-9]|8)MiB free and filled after `).MatchString(err.Error()) {
				t.Errorf("%q does not say it had (just under) 8MiB free", err)
			}
			if diff := cmp.Diff(before, loopfs.Tree(t, mnt, skipFill)); diff != "" {
				t.Errorf("the failure changed the guest's disk (-before +after):\n%s", diff)
			}
			if b, err := os.ReadFile(filepath.Join(ws, "old.txt")); err != nil || string(b) != "the previous workspace\n" {
				t.Errorf("the previous workspace after the failure: %q, %v", b, err)
			}
		})
	}

	res, err := s.PrepareWorkspace(ctx, "g", api.PrepareWorkspaceRequest{Dir: ws}, workspaceOf(1<<20))
	if err != nil {
		t.Fatalf("a workspace that fits, after the failures: %v", err)
	}
	if res.Files != 1 || res.Bytes != 1<<20 {
		t.Errorf("workspace that fits: %+v", res)
	}
}
