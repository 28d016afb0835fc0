package journal

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// streamOf returns f's "DEVICE:INODE", as systemd writes JOURNAL_STREAM.
func streamOf(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestConnected(t *testing.T) {
	dir := t.TempDir()
	stderr, _ := os.Create(filepath.Join(dir, "stderr"))
	other, _ := os.Create(filepath.Join(dir, "other"))
	defer stderr.Close()
	defer other.Close()
	tests := []struct {
		name   string
		stream string
		f      *os.File
		want   bool
	}{
		{"the stream systemd named", streamOf(t, stderr), stderr, true},
		{"inherited variable, stderr elsewhere", streamOf(t, other), stderr, false},
		{"unset", "", stderr, false},
		{"garbage", "journal", stderr, false},
		{"no file", streamOf(t, stderr), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Connected(tt.stream, tt.f); got != tt.want {
				t.Errorf("Connected(%q) = %v, want %v", tt.stream, got, tt.want)
			}
		})
	}
}

// Each record is one line with its syslog priority and no time (the
// journal stamps it), below the level nothing.
func TestHandler(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(Handler(&b, slog.LevelInfo))
	log.Debug("hidden")
	log.Info("bangerd ready", "socket", "/run/banger/bangerd.sock")
	log.Warn("slow", "stage", "boot")
	log.Error("failed", "error", "no space")
	want := `<6>level=INFO msg="bangerd ready" socket=/run/banger/bangerd.sock
<4>level=WARN msg=slow stage=boot
<3>level=ERROR msg=failed error="no space"
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("journal lines (-want +got):\n%s", d)
	}
}
