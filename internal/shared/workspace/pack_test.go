package workspace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{in: "", want: ModeGit},
		{in: "git", want: ModeGit},
		{in: "full_copy", want: ModeFullCopy},
		{in: "full-copy", wantErr: true},
		{in: "GIT", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), `"git"`) || !strings.Contains(err.Error(), `"full_copy"`) {
					t.Fatalf("ParseMode(%q) error = %v, want one listing the modes", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseMode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// gitFixture builds a repository exercising every git-mode rule and returns
// its path and the paths git mode must pack (besides .git).
func gitFixture(t *testing.T) (string, []string) {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	initRepo(t, repo)
	write(t, repo, ".gitignore", "*.log\nbuild/\n", 0o644)
	write(t, repo, "committed.txt", "committed\n", 0o644)
	write(t, repo, "modified.txt", "old\n", 0o644)
	write(t, repo, "deleted.txt", "going away\n", 0o644)
	write(t, repo, "run.sh", "#!/bin/sh\necho hi\n", 0o755)
	write(t, repo, "src/main.go", "package main\n", 0o644)
	write(t, repo, "dir with space/ünïcödé file.txt", "unicode\n", 0o600)
	write(t, repo, "build/keep.txt", "force-added inside an ignored dir\n", 0o644)
	symlink(t, "committed.txt", filepath.Join(repo, "link"))
	symlink(t, "src", filepath.Join(repo, "dirlink"))
	git(t, repo, "add", ".")
	git(t, repo, "add", "-f", "build/keep.txt")
	git(t, repo, "commit", "-q", "-m", "first commit")

	write(t, repo, "modified.txt", "new\n", 0o644)
	if err := os.Remove(filepath.Join(repo, "deleted.txt")); err != nil {
		t.Fatal(err)
	}
	write(t, repo, "untracked.txt", "untracked\n", 0o644)
	write(t, repo, "src/nested/deep.txt", "deep untracked\n", 0o644)
	write(t, repo, "debug.log", "ignored\n", 0o644)
	write(t, repo, "build/out.bin", "ignored dir\n", 0o644)
	write(t, repo, "node_modules_like/.keep", "", 0o644)
	write(t, repo, ".git/info/exclude", "node_modules_like/\n", 0o644)

	want := []string{
		".gitignore", "committed.txt", "modified.txt", "run.sh", "untracked.txt",
		"src", "src/main.go", "src/nested", "src/nested/deep.txt",
		"dir with space", "dir with space/ünïcödé file.txt",
		"build", "build/keep.txt", "link", "dirlink",
	}
	return repo, want
}

func TestPackGitMode(t *testing.T) {
	requireGit(t)
	repo, want := gitFixture(t)

	stream, packed := pack(t, repo, ModeGit)
	dest := filepath.Join(t.TempDir(), "repo")
	got := extract(t, stream.Bytes(), dest)
	if diff := cmp.Diff(packed, got); diff != "" {
		t.Errorf("Pack and Extract stats differ (-pack +extract):\n%s", diff)
	}

	t.Run("tree", func(t *testing.T) {
		host := snapshot(t, repo, skipDotGit)
		wantTree := map[string]node{}
		for _, p := range want {
			wantTree[p] = host[p]
		}
		if diff := cmp.Diff(wantTree, snapshot(t, dest, skipDotGit)); diff != "" {
			t.Errorf("extracted tree differs from the host's git-mode selection (-want +got):\n%s", diff)
		}
		if got := snapshot(t, dest, nil)["modified.txt"].Content; got != "new\n" {
			t.Errorf("modified.txt = %q, want the working-tree content %q", got, "new\n")
		}
	})

	t.Run("history", func(t *testing.T) {
		if got := git(t, dest, "log", "--format=%s"); got != "first commit" {
			t.Errorf("git log in the extracted tree = %q, want %q", got, "first commit")
		}
		if diff := cmp.Diff(git(t, repo, "status", "--porcelain"), git(t, dest, "status", "--porcelain")); diff != "" {
			t.Errorf("git status differs between host and extracted tree (-host +extracted):\n%s", diff)
		}
	})

	t.Run("headers", func(t *testing.T) {
		for _, hdr := range tarHeaders(t, stream.Bytes()) {
			name := strings.TrimSuffix(hdr.Name, "/")
			if path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "../") {
				t.Errorf("entry name %q is not a clean relative path", hdr.Name)
			}
			if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
				t.Errorf("entry %q owned by %d:%d (%q:%q), want 0:0 and no names", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
			}
		}
	})
}

// From a subdirectory, git mode packs the whole work tree from its top.
func TestPackGitModeFromSubdirectory(t *testing.T) {
	requireGit(t)
	repo, want := gitFixture(t)
	fromTop, _ := pack(t, repo, ModeGit)
	fromSub, _ := pack(t, filepath.Join(repo, "src", "nested"), ModeGit)
	if !bytes.Equal(fromTop.Bytes(), fromSub.Bytes()) {
		dest := filepath.Join(t.TempDir(), "repo")
		extract(t, fromSub.Bytes(), dest)
		var got []string
		for p := range snapshot(t, dest, skipDotGit) {
			got = append(got, p)
		}
		t.Errorf("packing from src/nested differs from packing from the top; got %v, want %v", got, want)
	}
}

func TestPackGitModeLinkedWorktree(t *testing.T) {
	requireGit(t)
	base := t.TempDir()
	repo, wt := filepath.Join(base, "repo"), filepath.Join(base, "wt")
	initRepo(t, repo)
	write(t, repo, "a.txt", "a\n", 0o644)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "on main")
	write(t, repo, "a.txt", "main's uncommitted edit\n", 0o644)
	git(t, repo, "worktree", "add", "-q", "-b", "feature", wt)
	write(t, wt, "b.txt", "b\n", 0o644)
	git(t, wt, "add", "b.txt")
	git(t, wt, "commit", "-q", "-m", "on feature")
	write(t, wt, "a.txt", "feature's uncommitted edit\n", 0o644)

	stream, _ := pack(t, wt, ModeGit)
	dest := filepath.Join(base, "dest")
	extract(t, stream.Bytes(), dest)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"branch", []string{"rev-parse", "--abbrev-ref", "HEAD"}, "feature"},
		{"log", []string{"log", "--format=%s"}, "on feature\non main"},
		{"status", []string{"status", "--porcelain"}, " M a.txt"},
		{"no worktree list", []string{"worktree", "list", "--porcelain"}, "worktree " + dest + "\nHEAD " + git(t, wt, "rev-parse", "HEAD") + "\nbranch refs/heads/feature"},
		{"fsck", []string{"fsck", "--no-progress"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, git(t, dest, tt.args...)); diff != "" {
				t.Errorf("git %s in the extracted worktree (-want +got):\n%s", strings.Join(tt.args, " "), diff)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(dest, ".git", "worktrees")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".git/worktrees was packed (err=%v); the guest repository should be standalone", err)
	}
}

func TestPackGitModeRefusesSubmodules(t *testing.T) {
	requireGit(t)
	tests := []struct {
		name     string
		setup    func(t *testing.T, repo string)
		wantPath string
		wantFile string // present after a full_copy round trip
	}{
		{
			name: "gitlink",
			setup: func(t *testing.T, repo string) {
				lib := filepath.Join(t.TempDir(), "lib")
				initRepo(t, lib)
				write(t, lib, "lib.txt", "library\n", 0o644)
				git(t, lib, "add", ".")
				git(t, lib, "commit", "-q", "-m", "lib")
				git(t, repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "vendor/lib")
				git(t, repo, "commit", "-q", "-m", "add submodule")
			},
			wantPath: "vendor/lib",
			wantFile: "vendor/lib/lib.txt",
		},
		{
			name: ".gitmodules only",
			setup: func(t *testing.T, repo string) {
				write(t, repo, ".gitmodules", "[submodule \"x\"]\n\tpath = third_party/x\n\turl = https://example.invalid/x.git\n", 0o644)
			},
			wantPath: "third_party/x",
			wantFile: ".gitmodules",
		},
		{
			name: "untracked nested repository",
			setup: func(t *testing.T, repo string) {
				nested := filepath.Join(repo, "tools", "nested")
				initRepo(t, nested)
				write(t, nested, "tool.txt", "tool\n", 0o644)
			},
			wantPath: "tools/nested",
			wantFile: "tools/nested/tool.txt",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			initRepo(t, repo)
			write(t, repo, ".gitignore", "*.log\n", 0o644)
			write(t, repo, "main.txt", "main\n", 0o644)
			git(t, repo, "add", ".")
			git(t, repo, "commit", "-q", "-m", "main")
			write(t, repo, "ignored.log", "ignored\n", 0o644)
			tt.setup(t, repo)

			_, err := Pack(context.Background(), repo, ModeGit, io.Discard)
			if !errors.Is(err, ErrSubmodule) {
				t.Fatalf("Pack(git) error = %v, want ErrSubmodule", err)
			}
			for _, want := range []string{tt.wantPath, "mode full_copy"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Pack(git) error %q does not mention %q", err, want)
				}
			}

			stream, _ := pack(t, repo, ModeFullCopy)
			dest := filepath.Join(t.TempDir(), "repo")
			extract(t, stream.Bytes(), dest)
			got := snapshot(t, dest, nil)
			for _, want := range []string{tt.wantFile, "ignored.log", ".git/HEAD"} {
				if got[want].Type != "file" {
					t.Errorf("full_copy round trip lacks %s", want)
				}
			}
		})
	}
}

func TestPackGitModeNotARepository(t *testing.T) {
	requireGit(t)
	repo := filepath.Join(t.TempDir(), "repo")
	initRepo(t, repo)
	plain := t.TempDir()
	write(t, plain, "file.txt", "x\n", 0o644)
	tests := []struct {
		name string
		root string
	}{
		{"plain directory", plain},
		{"inside .git", filepath.Join(repo, ".git")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Pack(context.Background(), tt.root, ModeGit, io.Discard)
			if !errors.Is(err, ErrNotRepo) || !strings.Contains(err.Error(), "mode full_copy") {
				t.Fatalf("Pack(git) error = %v, want ErrNotRepo suggesting mode full_copy", err)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		_, err := Pack(context.Background(), filepath.Join(plain, "nope"), ModeGit, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("Pack(missing) error = %v, want one naming the path", err)
		}
	})
}

// Pack never reads through a symlink, whatever the mode and wherever the
// symlink sits.
func TestPackNeverFollowsSymlinks(t *testing.T) {
	requireGit(t)
	const secret = "TOP-SECRET-CONTENT"
	tests := []struct {
		name     string
		mode     Mode
		setup    func(t *testing.T, repo, outside string)
		wantLink string // an entry that must be a symlink in the stream
	}{
		{
			name: "full_copy symlinks out of root",
			mode: ModeFullCopy,
			setup: func(t *testing.T, repo, outside string) {
				symlink(t, outside, filepath.Join(repo, "out"))
				symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(repo, "secret-link"))
			},
			wantLink: "out",
		},
		{
			name: "git tracked directory replaced by a symlink",
			mode: ModeGit,
			setup: func(t *testing.T, repo, outside string) {
				write(t, repo, "d/secret.txt", "tracked\n", 0o644)
				git(t, repo, "add", ".")
				git(t, repo, "commit", "-q", "-m", "d")
				if err := os.RemoveAll(filepath.Join(repo, "d")); err != nil {
					t.Fatal(err)
				}
				symlink(t, outside, filepath.Join(repo, "d"))
			},
			wantLink: "d",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			repo, outside := filepath.Join(base, "repo"), filepath.Join(base, "outside")
			initRepo(t, repo)
			write(t, repo, "a.txt", "a\n", 0o644)
			git(t, repo, "add", ".")
			git(t, repo, "commit", "-q", "-m", "a")
			write(t, outside, "secret.txt", secret, 0o644)
			tt.setup(t, repo, outside)

			stream, _ := pack(t, repo, tt.mode)
			if bytes.Contains(stream.Bytes(), []byte(secret)) {
				t.Fatalf("the stream contains content from outside the workspace")
			}
			found := false
			for _, hdr := range tarHeaders(t, stream.Bytes()) {
				if hdr.Name == tt.wantLink {
					found = hdr.Linkname == outside
				}
			}
			if !found {
				t.Errorf("%s is not in the stream as a symlink to %s", tt.wantLink, outside)
			}
		})
	}
}

// full_copy skips sockets, fifos and devices instead of blocking on them.
func TestPackFullCopySkipsSpecialFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.txt", "a\n", 0o644)
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	stream, st := pack(t, root, ModeFullCopy)
	var names []string
	for _, hdr := range tarHeaders(t, stream.Bytes()) {
		names = append(names, hdr.Name)
	}
	if diff := cmp.Diff([]string{"a.txt"}, names); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{Files: 1, Bytes: 2}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestPackCancelled(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.txt", "a\n", 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if _, err := Pack(ctx, root, ModeFullCopy, &buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pack with a cancelled context: %v, want context.Canceled", err)
	}
	// The unfinished stream must not be installable.
	dest := filepath.Join(t.TempDir(), "repo")
	if _, err := Extract(context.Background(), &buf, dest, ExtractOptions{}); err == nil {
		t.Fatalf("Extract accepted the stream of a failed Pack")
	}
}

// The git directory must work on its own in the guest.
func TestPackGitModeGitDirectoryLayouts(t *testing.T) {
	requireGit(t)
	origin := filepath.Join(t.TempDir(), "origin")
	initRepo(t, origin)
	write(t, origin, "a.txt", "a\n", 0o644)
	git(t, origin, "add", ".")
	git(t, origin, "commit", "-q", "-m", "origin commit")

	tests := []struct {
		name    string
		setup   func(t *testing.T, base string) string // returns the root to pack
		wantErr string                                 // "" = packs, and git log works in the guest
	}{
		{
			name: "separate git dir",
			setup: func(t *testing.T, base string) string {
				repo := filepath.Join(base, "repo")
				git(t, base, "clone", "-q", "--separate-git-dir", filepath.Join(base, "elsewhere.git"), origin, repo)
				return repo
			},
		},
		{
			name: "alternates",
			setup: func(t *testing.T, base string) string {
				repo := filepath.Join(base, "repo")
				git(t, base, "clone", "-q", "--shared", origin, repo)
				return repo
			},
			wantErr: "repack -a -d",
		},
		{
			name: "submodule checkout",
			setup: func(t *testing.T, base string) string {
				super := filepath.Join(base, "super")
				initRepo(t, super)
				git(t, super, "-c", "protocol.file.allow=always", "submodule", "add", "-q", origin, "vendor/origin")
				return filepath.Join(super, "vendor", "origin")
			},
			wantErr: "core.worktree",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			root := tt.setup(t, base)
			var buf bytes.Buffer
			_, err := Pack(context.Background(), root, ModeGit, &buf)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Pack error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(base, "dest")
			extract(t, buf.Bytes(), dest)
			if got := git(t, dest, "log", "--format=%s"); got != "origin commit" {
				t.Errorf("git log in the guest copy = %q, want %q", got, "origin commit")
			}
			if got := git(t, dest, "status", "--porcelain"); got != "" {
				t.Errorf("git status in the guest copy = %q, want clean", got)
			}
		})
	}
}
