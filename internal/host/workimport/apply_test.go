package workimport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newApply sends a clean checkout with one untracked file (notes.txt) to
// a guest, where an agent changes a.txt, commits, then adds new.txt and a
// symlink to /etc/passwd and leaves them uncommitted; it returns the
// host, what was sent and the bundle.
func newApply(t *testing.T) (string, Sent, []byte) {
	t.Helper()
	host := newHost(t)
	writeFile(t, filepath.Join(host, "notes.txt"), "untracked on the host\n")
	sent, err := RecordSent(context.Background(), host, "vm-2")
	if err != nil {
		t.Fatal(err)
	}
	guest := filepath.Join(t.TempDir(), "guest")
	copyTree(t, host, guest)
	writeFile(t, filepath.Join(guest, "a.txt"), "one\nTWO\nthree\n")
	tgit(t, guest, "commit", "-q", "-a", "-m", "agent: shout two")
	tgit(t, guest, "update-ref", "refs/banger/head", "HEAD")
	writeFile(t, filepath.Join(guest, "new.txt"), "new\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(guest, "passwd")); err != nil {
		t.Fatal(err)
	}
	tgit(t, guest, "add", "-A")
	tgit(t, guest, "commit", "-q", "-m", "uncommitted")
	tgit(t, guest, "update-ref", "refs/banger/work", "HEAD")
	return host, sent, bundleOf(t, guest, "refs/banger/work", "refs/banger/head", "^"+sent.Commit)
}

func TestApply(t *testing.T) {
	hermetic(t)
	passwdBefore := digest(t, "/etc/passwd")
	host, sent, bundle := newApply(t)
	if sent.Commit == sent.Head {
		t.Fatal("the untracked notes.txt should have made a sent commit of its own")
	}
	before := takeSnapshot(t, host)
	ctx := context.Background()
	w, err := Open(ctx, host, bytes.NewReader(bundle), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Apply(ctx, sent.Commit); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	after := takeSnapshot(t, host)

	want := map[string]string{}
	for k, v := range before.WorkTree {
		want[k] = v
	}
	for rel, content := range map[string]string{"a.txt": "one\nTWO\nthree\n", "new.txt": "new\n"} {
		path := filepath.Join(host, rel)
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, content)
		}
		want[rel] = digest(t, path)
	}
	want["passwd"] = "symlink /etc/passwd"
	if d := cmp.Diff(want, after.WorkTree); d != "" {
		t.Errorf("work tree after Apply (-want +got):\n%s", d)
	}
	if d := cmp.Diff(before.GitFiles, after.GitFiles); d != "" {
		t.Errorf("Apply changed .git (index, HEAD, config, hooks) (-before +after):\n%s", d)
	}
	if before.Refs != after.Refs {
		t.Errorf("Apply changed refs:\n%s\n->\n%s", before.Refs, after.Refs)
	}
	if got := digest(t, "/etc/passwd"); got != passwdBefore {
		t.Errorf("/etc/passwd changed: %s -> %s", passwdBefore, got)
	}
}

func TestApplyRefuses(t *testing.T) {
	hermetic(t)
	tests := []struct {
		name    string
		change  func(t *testing.T, host string) // what the user did after sending
		wantIs  error
		wantMsg []string
	}{
		{
			name: "uncommitted change",
			change: func(t *testing.T, host string) {
				writeFile(t, filepath.Join(host, "dir", "b.txt"), "edited since\n")
			},
			wantIs:  ErrDirty,
			wantMsg: []string{"git stash", "commit them"},
		},
		{
			name: "staged change",
			change: func(t *testing.T, host string) {
				writeFile(t, filepath.Join(host, "other.txt"), "staged\n")
				tgit(t, host, "add", "other.txt")
			},
			wantIs:  ErrDirty,
			wantMsg: []string{"git stash"},
		},
		{
			name: "checkout moved: a conflicting commit",
			change: func(t *testing.T, host string) {
				writeFile(t, filepath.Join(host, "a.txt"), "one\ntwo-ish\nthree\n")
				tgit(t, host, "commit", "-q", "-a", "-m", "host moved on")
			},
			wantMsg: []string{"moved since the workspace was sent", "pull to a branch"},
		},
		{
			name: "an untracked file where the work adds one: nothing applied",
			change: func(t *testing.T, host string) {
				writeFile(t, filepath.Join(host, "new.txt"), "the user's own\n")
			},
			wantMsg: []string{"new.txt", "nothing was changed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, sent, bundle := newApply(t)
			ctx := context.Background()
			w, err := Open(ctx, host, bytes.NewReader(bundle), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			tt.change(t, host)
			before := takeSnapshot(t, host)
			err = w.Apply(ctx, sent.Commit)
			if err == nil {
				t.Fatal("Apply succeeded, want refused")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %v, want it to mention %q", err, m)
				}
			}
			if d := cmp.Diff(before, takeSnapshot(t, host)); d != "" {
				t.Errorf("a refused Apply changed the host (-before +after):\n%s", d)
			}
		})
	}
}

func TestBaseMustBeAFullCommitID(t *testing.T) {
	hermetic(t)
	host, sent, bundle := newApply(t)
	ctx := context.Background()
	w, err := Open(ctx, host, bytes.NewReader(bundle), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tree := tgit(t, host, "rev-parse", sent.Commit+"^{tree}")
	for _, base := range []string{"", "HEAD", "--all", sent.Commit[:12], strings.Repeat("0", 40), tree} {
		if _, err := w.Commits(ctx, base); err == nil {
			t.Errorf("Commits(%q) succeeded, want refused", base)
		}
		if _, err := w.Files(ctx, base, nil); err == nil {
			t.Errorf("Files(%q) succeeded, want refused", base)
		}
		if err := w.Patch(ctx, base, nil, &bytes.Buffer{}); err == nil {
			t.Errorf("Patch(%q) succeeded, want refused", base)
		}
		if err := w.Apply(ctx, base); err == nil {
			t.Errorf("Apply(%q) succeeded, want refused", base)
		}
	}
}
