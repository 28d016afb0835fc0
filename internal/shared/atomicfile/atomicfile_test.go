package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write and Replace (Write without the sync) replace a file whole, make
// missing directories only when asked, and never write through a link.
func TestWrite(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode, os.FileMode) error{"Write": Write, "Replace": Replace} {
		t.Run(name, func(t *testing.T) { testWrite(t, write) })
	}
}

func testWrite(t *testing.T, Write func(string, []byte, os.FileMode, os.FileMode) error) {
	dir := t.TempDir()
	name := filepath.Join(dir, "a", "b", "f")
	if err := Write(name, []byte("one"), 0o600, 0); err == nil {
		t.Fatal("wrote into a missing directory with dirMode 0")
	}
	if err := Write(name, []byte("one"), 0o640, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(name, []byte("two"), 0o600, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(name)
	fi, _ := os.Stat(name)
	di, _ := os.Stat(filepath.Dir(name))
	if string(b) != "two" || fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("content %q, mode %v, dir mode %v", b, fi.Mode().Perm(), di.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A symlink at name is replaced, never written through.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if err := Write(link, []byte("new"), 0o600, 0); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("wrote through a symlink: %q", b)
	}
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name   string
		old    string // "" means no file before
		writes []string
		commit bool
		mode   os.FileMode
		want   string // "" means no file after
	}{
		{name: "commit makes a new file", writes: []string{"a", "b"}, commit: true, mode: 0o644, want: "ab"},
		{name: "commit replaces the old file", old: "old", writes: []string{"new"}, commit: true, mode: 0o600, want: "new"},
		{name: "abort keeps the old file", old: "old", writes: []string{"half"}, want: "old"},
		{name: "abort makes no file", writes: []string{"half"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, "f")
			if tt.old != "" {
				os.WriteFile(name, []byte(tt.old), 0o600)
			}
			f, err := Create(name, tt.mode, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				if _, err := f.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			// Until Commit, readers see the old content.
			if b, _ := os.ReadFile(name); string(b) != tt.old {
				t.Errorf("before commit: %q, want %q", b, tt.old)
			}
			if tt.commit {
				if err := f.Commit(); err != nil {
					t.Fatal(err)
				}
				if err := f.Commit(); err == nil {
					t.Error("a second Commit succeeded")
				}
			}
			f.Abort()
			b, err := os.ReadFile(name)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("file exists with %q, want none", b)
			case tt.want != "" && string(b) != tt.want:
				t.Errorf("content %q (%v), want %q", b, err, tt.want)
			}
			if tt.commit {
				if fi, _ := os.Stat(name); fi.Mode().Perm() != tt.mode {
					t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.mode)
				}
			}
			entries, _ := os.ReadDir(dir)
			if n := len(entries); (tt.want != "" || tt.old != "") && n != 1 || tt.want == "" && tt.old == "" && n != 0 {
				t.Errorf("temporary files left: %v", entries)
			}
		})
	}
}

func TestSyncDir(t *testing.T) {
	tests := []struct {
		name    string
		dir     func(t *testing.T) string
		wantErr bool
	}{
		{name: "a directory", dir: func(t *testing.T) string { return t.TempDir() }},
		{name: "a missing directory", dir: func(t *testing.T) string { return filepath.Join(t.TempDir(), "gone") }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SyncDir(tt.dir(t))
			if (err != nil) != tt.wantErr {
				t.Errorf("SyncDir: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
