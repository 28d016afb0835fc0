package workimport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

func TestRecordSent(t *testing.T) {
	hermetic(t)
	tests := []struct {
		name string
		// setup makes the checkout and returns its top.
		setup func(t *testing.T) string
		// wantFiles is the sent commit's tree; nil when the commit must
		// be HEAD itself.
		wantFiles []string
		unborn    bool
	}{
		{
			name:  "clean checkout sends HEAD",
			setup: newHost,
		},
		{
			name: "ignored files only: still HEAD",
			setup: func(t *testing.T) string {
				top := newHost(t)
				writeFile(t, filepath.Join(top, "build.log"), "noise\n")
				return top
			},
		},
		{
			name: "modified, deleted and untracked files",
			setup: func(t *testing.T) string {
				top := newHost(t)
				writeFile(t, filepath.Join(top, "a.txt"), "changed\n")
				if err := os.Remove(filepath.Join(top, "dir", "b.txt")); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(top, "new", "c.txt"), "sea\n")
				writeFile(t, filepath.Join(top, "new", "c.log"), "ignored\n")
				return top
			},
			wantFiles: []string{".gitignore", "a.txt", "new/c.txt"},
		},
		{
			name: "staged change differing from the work tree: the work tree is sent",
			setup: func(t *testing.T) string {
				top := newHost(t)
				writeFile(t, filepath.Join(top, "a.txt"), "staged\n")
				tgit(t, top, "add", "a.txt")
				writeFile(t, filepath.Join(top, "a.txt"), "on disk\n")
				return top
			},
			wantFiles: []string{".gitignore", "a.txt", "dir/b.txt"},
		},
		{
			name: "unborn HEAD with files",
			setup: func(t *testing.T) string {
				top := filepath.Join(t.TempDir(), "r")
				tgit(t, filepath.Dir(top), "init", "-q", "-b", "main", top)
				writeFile(t, filepath.Join(top, "x.txt"), "x\n")
				return top
			},
			wantFiles: []string{"x.txt"},
			unborn:    true,
		},
		{
			name: "unborn HEAD without files: an empty tree",
			setup: func(t *testing.T) string {
				top := filepath.Join(t.TempDir(), "r")
				tgit(t, filepath.Dir(top), "init", "-q", "-b", "main", top)
				return top
			},
			wantFiles: []string{},
			unborn:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := tt.setup(t)
			before := takeSnapshot(t, top)
			statusBefore := tgit(t, top, "status", "--porcelain=v2", "--branch", "--untracked-files=all")

			// From a subdirectory, as a user would.
			from := top
			if _, err := os.Stat(filepath.Join(top, "dir")); err == nil {
				from = filepath.Join(top, "dir")
			}
			s, err := RecordSent(context.Background(), from, "vm-1")
			if err != nil {
				t.Fatalf("RecordSent: %v", err)
			}

			after := takeSnapshot(t, top)
			if d := cmp.Diff(before.WorkTree, after.WorkTree); d != "" {
				t.Errorf("work tree changed (-before +after):\n%s", d)
			}
			for _, f := range []string{"index", "HEAD", "config"} {
				if before.GitFiles[f] != after.GitFiles[f] {
					t.Errorf(".git/%s changed: %s -> %s", f, before.GitFiles[f], after.GitFiles[f])
				}
			}
			if got := tgit(t, top, "status", "--porcelain=v2", "--branch", "--untracked-files=all"); got != statusBefore {
				t.Errorf("git status changed:\n%s\n->\n%s", statusBefore, got)
			}

			if s.Top != top {
				t.Errorf("Top = %q, want %q", s.Top, top)
			}
			wantHead := ""
			if !tt.unborn {
				wantHead = tgit(t, top, "rev-parse", "HEAD")
			}
			if s.Head != wantHead {
				t.Errorf("Head = %q, want %q", s.Head, wantHead)
			}
			if got := tgit(t, top, "rev-parse", api.SentRefPrefix+"vm-1"); got != s.Commit {
				t.Errorf("%svm-1 = %s, want %s", api.SentRefPrefix, got, s.Commit)
			}
			if tt.wantFiles == nil {
				if s.Commit != s.Head {
					t.Errorf("Commit = %s, want HEAD %s", s.Commit, s.Head)
				}
				return
			}
			if s.Commit == "" || s.Commit == s.Head {
				t.Fatalf("Commit = %q, want a new commit on top of %q", s.Commit, s.Head)
			}
			files := strings.Fields(tgit(t, top, "ls-tree", "-r", "--name-only", s.Commit))
			if d := cmp.Diff(tt.wantFiles, files, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") })); d != "" {
				t.Errorf("sent files (-want +got):\n%s", d)
			}
			for path, want := range map[string]string{"a.txt": "", "x.txt": ""} {
				if _, err := os.Stat(filepath.Join(top, path)); err == nil && want == "" {
					disk, _ := os.ReadFile(filepath.Join(top, path))
					if got := tgit(t, top, "cat-file", "-p", s.Commit+":"+path); got != strings.TrimSpace(string(disk)) {
						t.Errorf("%s in the sent commit = %q, want the file on disk %q", path, got, disk)
					}
				}
			}
			meta := tgit(t, top, "log", "-1", "--format=%P|%an <%ae>|%cn <%ce>|%s", s.Commit)
			wantMeta := s.Head + "|banger <banger@localhost>|banger <banger@localhost>|banger: workspace sent to VM vm-1"
			if meta != wantMeta {
				t.Errorf("sent commit = %q, want %q", meta, wantMeta)
			}
		})
	}
}

func TestRecordSentAgainMovesTheRef(t *testing.T) {
	hermetic(t)
	top := newHost(t)
	first, err := RecordSent(context.Background(), top, "vm")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(top, "later.txt"), "later\n")
	second, err := RecordSent(context.Background(), top, "vm")
	if err != nil {
		t.Fatal(err)
	}
	if first.Commit == second.Commit {
		t.Fatalf("second send recorded the same commit %s", first.Commit)
	}
	if got := tgit(t, top, "rev-parse", api.SentRefPrefix+"vm"); got != second.Commit {
		t.Errorf("ref = %s, want %s", got, second.Commit)
	}
}

func TestRecordSentRefusesBadVMNames(t *testing.T) {
	hermetic(t)
	top := newHost(t)
	before := takeSnapshot(t, top)
	for _, vm := range []string{"", "a..b", "with space", "x.lock", "ends/", "a:b", "new\nline"} {
		if _, err := RecordSent(context.Background(), top, vm); err == nil {
			t.Errorf("RecordSent(%q) succeeded, want refused", vm)
		}
	}
	if d := cmp.Diff(before, takeSnapshot(t, top)); d != "" {
		t.Errorf("refused names changed the repository (-before +after):\n%s", d)
	}
}

func TestRecordSentOutsideARepository(t *testing.T) {
	hermetic(t)
	_, err := RecordSent(context.Background(), t.TempDir(), "vm")
	if err == nil || !strings.Contains(err.Error(), "not a git work tree") {
		t.Fatalf("err = %v, want not a git work tree", err)
	}
}

// TestRecordSentIgnoresSigningAndIdentity: a user with no identity
// (user.useConfigOnly, no user.name) and commit signing on with a gpg
// that fails still sends a workspace; the sent commit is banger's,
// unsigned. (git 2.39's commit-tree does not read commit.gpgSign;
// RecordSent passes --no-gpg-sign for gits that might.)
func TestRecordSentIgnoresSigningAndIdentity(t *testing.T) {
	hermetic(t)
	top := newHost(t)
	global := os.Getenv("GIT_CONFIG_GLOBAL")
	tgit(t, top, "config", "--file", global, "commit.gpgSign", "true")
	tgit(t, top, "config", "--file", global, "gpg.program", "false")
	tgit(t, top, "config", "--file", global, "user.useConfigOnly", "true")
	writeFile(t, filepath.Join(top, "new.txt"), "new\n")
	s, err := RecordSent(context.Background(), top, "vm")
	if err != nil {
		t.Fatalf("RecordSent: %v", err)
	}
	if got := tgit(t, top, "cat-file", "commit", s.Commit); strings.Contains(got, "gpgsig") || !strings.Contains(got, "author banger <banger@localhost>") {
		t.Errorf("sent commit:\n%s", got)
	}
}
