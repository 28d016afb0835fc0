package localsock

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// other is the uid that stands in for another local user.
const other = 65534

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to " + why)
	}
}

func mkdir(t *testing.T, path string, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
	if uid != os.Getuid() {
		if err := os.Chown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// A runtime (or state) directory another user could have planted or can
// write is refused with the path, the owner found and the fix; nothing is
// created in it or through it.
func TestEnsurePrivateDirRefuses(t *testing.T) {
	me := os.Getuid()
	tests := []struct {
		name string
		root bool // needs root to chown
		// plant prepares base (a fresh 0700 directory of ours) and returns
		// the directory to check and a directory that must stay empty.
		plant func(t *testing.T, base string) (dir, untouched string)
		want  []string
	}{
		{
			name: "symlink to another user's directory",
			root: true,
			plant: func(t *testing.T, base string) (string, string) {
				target := filepath.Join(base, "trap")
				mkdir(t, target, 0o777, other)
				os.Symlink(target, filepath.Join(base, "banger-1000"))
				return filepath.Join(base, "banger-1000"), target
			},
			want: []string{"banger-1000 is a symbolic link", "owned by uid 65534", "rm ", "XDG_RUNTIME_DIR"},
		},
		{
			name: "symlink to a directory of the user's",
			plant: func(t *testing.T, base string) (string, string) {
				target := filepath.Join(base, "mine")
				mkdir(t, target, 0o700, me)
				os.Symlink(target, filepath.Join(base, "banger-1000"))
				return filepath.Join(base, "banger-1000"), target
			},
			want: []string{"banger-1000 is a symbolic link", fmt.Sprintf("owned by uid %d", me), "remove it"},
		},
		{
			name: "dangling symlink",
			plant: func(t *testing.T, base string) (string, string) {
				os.Symlink(filepath.Join(base, "later"), filepath.Join(base, "run"))
				return filepath.Join(base, "run"), filepath.Join(base, "later")
			},
			want: []string{"run is a symbolic link", "does not exist"},
		},
		{
			name: "directory owned by uid 65534",
			root: true,
			plant: func(t *testing.T, base string) (string, string) {
				dir := filepath.Join(base, "run")
				mkdir(t, dir, 0o700, other)
				return dir, dir
			},
			want: []string{"run belongs to uid 65534", "rm -r", "XDG_RUNTIME_DIR"},
		},
		{
			name: "unreadable directory owned by uid 65534",
			root: true,
			plant: func(t *testing.T, base string) (string, string) {
				dir := filepath.Join(base, "run")
				mkdir(t, dir, 0o000, other)
				return dir, dir
			},
			want: []string{"run belongs to uid 65534"},
		},
		{
			name: "group-writable directory",
			plant: func(t *testing.T, base string) (string, string) {
				dir := filepath.Join(base, "run")
				mkdir(t, dir, 0o770, me)
				return dir, dir
			},
			want: []string{"run is writable by other users (mode -rwxrwx---", "rm -r", "chmod 700"},
		},
		{
			name: "world-writable directory",
			plant: func(t *testing.T, base string) (string, string) {
				dir := filepath.Join(base, "run")
				mkdir(t, dir, 0o777, me)
				return dir, dir
			},
			want: []string{"writable by other users (mode -rwxrwxrwx"},
		},
		{
			name: "a file in the way",
			plant: func(t *testing.T, base string) (string, string) {
				os.WriteFile(filepath.Join(base, "run"), nil, 0o600)
				return filepath.Join(base, "run"), ""
			},
			want: []string{"run is not a directory", "mv "},
		},
		{
			name: "parent others can write, without the sticky bit",
			plant: func(t *testing.T, base string) (string, string) {
				mkdir(t, filepath.Join(base, "open"), 0o777, me)
				return filepath.Join(base, "open", "run"), ""
			},
			want: []string{"which other users can write (mode -rwxrwxrwx, no sticky bit)"},
		},
		{
			name: "parent owned by another user",
			root: true,
			plant: func(t *testing.T, base string) (string, string) {
				mkdir(t, filepath.Join(base, "theirs"), 0o755, other)
				return filepath.Join(base, "theirs", "banger"), ""
			},
			want: []string{"theirs, which belongs to uid 65534", "could replace it", "sudo without -E"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				needRoot(t, "plant a directory owned by another uid")
			}
			base := shortDir(t)
			dir, untouched := tt.plant(t, base)
			err := EnsurePrivateDir(dir)
			if err == nil {
				t.Fatalf("EnsurePrivateDir(%s) accepted it", dir)
			}
			for _, w := range append([]string{dir}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if untouched != "" {
				if names := entries(t, untouched); len(names) != 0 {
					t.Errorf("%s gained %v", untouched, names)
				}
			}
		})
	}
}

func TestEnsurePrivateDirAccepts(t *testing.T) {
	tests := []struct {
		name     string
		plant    func(t *testing.T, base string) string
		wantMode fs.FileMode
	}{
		{"created under a sticky shared parent such as /tmp", func(t *testing.T, base string) string {
			mkdir(t, filepath.Join(base, "tmp"), 0o777|fs.ModeSticky, os.Getuid())
			return filepath.Join(base, "tmp", "banger-1000")
		}, 0o700},
		{"created with its parents", func(t *testing.T, base string) string {
			return filepath.Join(base, "a", "b", "run")
		}, 0o700},
		{"an existing private directory", func(t *testing.T, base string) string {
			mkdir(t, filepath.Join(base, "run"), 0o700, os.Getuid())
			return filepath.Join(base, "run")
		}, 0o700},
		{"in a group-writable parent of the user's (umask 002)", func(t *testing.T, base string) string {
			mkdir(t, filepath.Join(base, "state"), 0o775, os.Getuid())
			return filepath.Join(base, "state", "banger")
		}, 0o700},
		{"an existing directory others may read but not write", func(t *testing.T, base string) string {
			mkdir(t, filepath.Join(base, "run"), 0o755, os.Getuid())
			return filepath.Join(base, "run")
		}, 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.plant(t, shortDir(t))
			if err := EnsurePrivateDir(dir); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("%s: mode %v, want a directory with %v", dir, fi.Mode(), tt.wantMode)
			}
		})
	}
}

// A file banger writes in its private directories (pid file, locks, log)
// is never written through a symbolic link, a hard link or a file that is
// not the user's.
func TestOpenPrivateFileRefuses(t *testing.T) {
	tests := []struct {
		name  string
		root  bool
		plant func(t *testing.T, dir, path string) (victim string)
		want  string
	}{
		{"symlink to a file of the user's", false, func(t *testing.T, dir, path string) string {
			victim := filepath.Join(dir, "victim")
			os.WriteFile(victim, []byte("precious\n"), 0o600)
			os.Symlink(victim, path)
			return victim
		}, "is a symbolic link (to "},
		{"symlink to a file that does not exist yet", false, func(t *testing.T, dir, path string) string {
			os.Symlink(filepath.Join(dir, "created"), path)
			return filepath.Join(dir, "created")
		}, "which does not exist"},
		{"hard link to another file", false, func(t *testing.T, dir, path string) string {
			victim := filepath.Join(dir, "victim")
			os.WriteFile(victim, []byte("precious\n"), 0o600)
			os.Link(victim, path)
			return victim
		}, "has 2 hard links"},
		{"a named pipe", false, func(t *testing.T, dir, path string) string {
			syscall.Mkfifo(path, 0o600)
			return ""
		}, "is not a regular file"},
		{"a file of another user's", true, func(t *testing.T, dir, path string) string {
			os.WriteFile(path, []byte("precious\n"), 0o600)
			os.Chown(path, other, other)
			return path
		}, "belongs to uid 65534"},
		{"a world-writable file", false, func(t *testing.T, dir, path string) string {
			os.WriteFile(path, []byte("precious\n"), 0o600)
			os.Chmod(path, 0o666)
			return path
		}, "is writable by other users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				needRoot(t, "plant a file owned by another uid")
			}
			dir := shortDir(t)
			path := filepath.Join(dir, "bangerd.pid")
			victim := tt.plant(t, dir, path)
			var before []byte
			if victim != "" {
				before, _ = os.ReadFile(victim)
			}
			err := WritePrivateFile(path, []byte("4242\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "rm "+path) {
				t.Fatalf("WritePrivateFile: %v\nwant an error containing %q and the fix", err, tt.want)
			}
			if victim != "" {
				after, _ := os.ReadFile(victim)
				if string(after) != string(before) {
					t.Errorf("%s changed from %q to %q", victim, before, after)
				}
			}
		})
	}
}

func TestWritePrivateFile(t *testing.T) {
	path := filepath.Join(shortDir(t), "bangerd.pid")
	for _, content := range []string{"123456\n", "7\n"} { // a rewrite truncates
		if err := WritePrivateFile(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
}

// A non-root user is told who owns a runtime directory it cannot even
// read (here root's, 0700), not just "permission denied".
func TestEnsurePrivateDirNamesOwnerOfUnreadableDir(t *testing.T) {
	needRoot(t, "run a check as another uid")
	base := shortDir(t)
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "banger-65534")
	mkdir(t, dir, 0o700, os.Getuid())
	cmd := exec.Command(helperBin(t), "-test.run=^$")
	cmd.Env = []string{helperEnv + "=ensure", "LOCALSOCK_DIR=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("%s belongs to uid %d, not to you (uid %d)", dir, os.Getuid(), other)
	if err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("EnsurePrivateDir as uid %d: %v: %s\nwant %q", other, err, out, want)
	}
}
