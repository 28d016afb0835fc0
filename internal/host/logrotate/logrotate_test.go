package logrotate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriterRotates(t *testing.T) {
	tests := []struct {
		name       string
		existing   string // the log's content before Open
		max        int64
		writes     []string
		wantLog    string
		wantBackup string // "" means no backup file
	}{
		{
			name: "under the limit nothing rotates", max: 100,
			writes:  []string{"a\n", "b\n"},
			wantLog: "a\nb\n",
		},
		{
			name: "a write past the limit starts a new file", max: 6,
			writes:  []string{"one\n", "two\n", "three\n"},
			wantLog: "three\n", wantBackup: "two\n",
		},
		{
			name: "exactly the limit stays in one file", max: 8,
			writes:  []string{"one\n", "two\n"},
			wantLog: "one\ntwo\n",
		},
		{
			name: "a record larger than the limit gets a file of its own", max: 4,
			writes:  []string{"a\n", "a long record\n", "b\n"},
			wantLog: "b\n", wantBackup: "a long record\n",
		},
		{
			name: "an existing log counts toward the limit", existing: "old record\n", max: 12,
			writes:  []string{"new\n"},
			wantLog: "new\n", wantBackup: "old record\n",
		},
		{
			name: "an existing log under the limit is appended to", existing: "old\n", max: 100,
			writes:  []string{"new\n"},
			wantLog: "old\nnew\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bangerd.log")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			w, err := Open(path, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := read(t, path); got != tt.wantLog {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
			if got := read(t, Backup(path)); got != tt.wantBackup {
				t.Errorf("backup = %q, want %q", got, tt.wantBackup)
			}
			for _, p := range Files(path) {
				if fi, err := os.Lstat(p); err == nil && fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
				}
			}
			if _, err := w.Write([]byte("late\n")); err == nil {
				t.Error("Write after Close succeeded")
			}
		})
	}
}

// read returns a file's content, or "" when it does not exist.
func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		plant   func(t *testing.T, path string)
		max     int64
		wantErr string
	}{
		{
			name: "a symbolic link at the log", max: 10,
			plant: func(t *testing.T, path string) {
				target := filepath.Join(filepath.Dir(path), "elsewhere")
				os.WriteFile(target, nil, 0o600)
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "is a symbolic link",
		},
		{
			name: "a directory at the log", max: 10,
			plant:   func(t *testing.T, path string) { os.Mkdir(path, 0o700) },
			wantErr: "opening the log",
		},
		{
			name: "no size limit", max: 0,
			plant:   func(t *testing.T, path string) {},
			wantErr: "must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bangerd.log")
			tt.plant(t, path)
			w, err := Open(path, tt.max)
			if err == nil {
				w.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// A link planted at the log's name after it rotated away is not written
// through: the rotation fails, and records go on to the file already open.
func TestRotationNeverFollowsALink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bangerd.log")
	w, err := Open(path, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("abc\n"))
	target := filepath.Join(dir, "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.Remove(path) // the open file lives on, unnamed
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("next\n")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, target); got != "keep" {
		t.Errorf("wrote through the link: victim = %q", got)
	}
}
