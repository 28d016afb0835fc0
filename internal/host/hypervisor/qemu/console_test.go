package qemu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// collapseWorks reports whether dir's filesystem supports
// FALLOC_FL_COLLAPSE_RANGE (ext4 and xfs do, tmpfs does not).
func collapseWorks(t *testing.T, dir string) bool {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(make([]byte, 3*64<<10))
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, 64<<10) == nil
}

func TestTrimConsole(t *testing.T) {
	content := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "[%8d] console line\n", i)
		}
		return b.Bytes()[:n]
	}
	tests := []struct {
		name     string
		size     int // -1: no file
		limit    int64
		collapse bool
		wantSame bool // the file is left alone
	}{
		{"missing file", -1, 1024, true, true},
		{"under the limit", 1000, 1024, true, true},
		{"at the limit", 1024, 1024, true, true},
		{"over, collapse", 300 << 10, 64 << 10, true, false},
		{"over, copy", 300 << 10, 64 << 10, false, false},
		{"limit under one block, collapse falls back", 20 << 10, 1000, true, false},
		{"limit 0 means the default", DefaultConsoleLimit + 5000, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			var orig []byte
			if tt.size >= 0 {
				orig = content(tt.size)
				if err := os.WriteFile(path, orig, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			removed, err := trimConsole(path, tt.limit, tt.collapse)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if tt.wantSame {
				if removed != 0 || !bytes.Equal(got, orig) {
					t.Errorf("removed %d bytes; want the file left alone", removed)
				}
				return
			}
			limit := tt.limit
			if limit == 0 {
				limit = DefaultConsoleLimit
			}
			if int64(len(got)) > limit {
				t.Errorf("%d bytes after the trim, over the limit %d", len(got), limit)
			}
			if len(got) == 0 {
				t.Errorf("the trim kept nothing")
			}
			if removed != int64(len(orig)-len(got)) {
				t.Errorf("reported %d bytes removed, but %d were", removed, len(orig)-len(got))
			}
			if !bytes.HasSuffix(orig, got) {
				t.Errorf("the kept bytes are not the newest ones")
			}
		})
	}
}

// TestTrimConsoleWhileAppending trims while a writer appends through its
// own O_APPEND descriptor, as QEMU does: the bound holds after each trim,
// the newest output survives and, where the filesystem can collapse a
// range, nothing is lost or reordered.
func TestTrimConsoleWhileAppending(t *testing.T) {
	for _, collapse := range []bool{true, false} {
		t.Run(fmt.Sprintf("collapse=%v", collapse), func(t *testing.T) {
			dir := t.TempDir()
			exact := collapse && collapseWorks(t, dir)
			path := filepath.Join(dir, "console.log")
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			const limit = 32 << 10
			var all bytes.Buffer
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					line := fmt.Sprintf("line %07d: the guest says something\n", i)
					all.WriteString(line)
					if _, err := w.WriteString(line); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			trims := 0
			for trims < 200 {
				n, err := trimConsole(path, limit, collapse)
				if err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					trims++
				}
			}
			close(stop)
			wg.Wait()
			w.Close()
			if _, err := trimConsole(path, limit, collapse); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if len(got) > limit || len(got) == 0 {
				t.Fatalf("%d bytes after the last trim; want 1..%d", len(got), limit)
			}
			lines := bytes.Split(bytes.TrimSuffix(all.Bytes(), []byte("\n")), []byte("\n"))
			last := lines[len(lines)-1]
			if !bytes.HasSuffix(got, append(last, '\n')) {
				t.Errorf("the log does not end with the newest line %q", last)
			}
			if exact && !bytes.HasSuffix(all.Bytes(), got) {
				t.Errorf("with FALLOC_FL_COLLAPSE_RANGE the log must be exactly the newest %d bytes written", len(got))
			}
			t.Logf("%d trims, %d bytes written, %d kept, exact=%v", trims, all.Len(), len(got), exact)
		})
	}
}
