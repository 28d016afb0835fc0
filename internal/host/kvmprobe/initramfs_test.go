package kvmprobe

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/shared/initramfs"
	"github.com/google/go-cmp/cmp"
)

// buildProbeInit builds testdata/probeinit as a static linux/amd64 binary.
func buildProbeInit(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH, so the test init binary cannot be built")
	}
	out := filepath.Join(t.TempDir(), "probeinit")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/probeinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/probeinit: %v\n%s", err, b)
	}
	return out
}

func TestWriteInitramfs(t *testing.T) {
	agent := buildProbeInit(t)
	var buf bytes.Buffer
	if err := WriteInitramfs(&buf, agent); err != nil {
		t.Fatalf("WriteInitramfs: %v", err)
	}

	type entry struct {
		Name         string
		Mode         fs.FileMode
		Major, Minor uint32
	}
	var got []entry
	var initData []byte
	r := initramfs.NewReader(&buf)
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		got = append(got, entry{h.Name, h.Mode, h.RdevMajor, h.RdevMinor})
		if h.Name == "init" {
			if initData, err = io.ReadAll(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []entry{
		{"dev", fs.ModeDir | 0o755, 0, 0},
		{"dev/console", fs.ModeDevice | fs.ModeCharDevice | 0o600, 5, 1},
		{"proc", fs.ModeDir | 0o555, 0, 0},
		{"sys", fs.ModeDir | 0o555, 0, 0},
		{"init", 0o755, 0, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
	wantInit, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wantInit, initData) {
		t.Errorf("/init (%d bytes) is not the agent binary (%d bytes)", len(initData), len(wantInit))
	}
}

func TestWriteInitramfsRejects(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "init.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		agent  string
		errSub string
	}{
		{"missing", filepath.Join(dir, "nope"), "needs the banger-agent binary"},
		{"directory", dir, "is not a regular file"},
		{"not ELF", script, "is not a Linux ELF executable"},
	}
	// A dynamically linked binary: any from the host's /bin will do.
	for _, p := range []string{"/bin/true", "/usr/bin/true", "/bin/sh"} {
		if dynamic(p) {
			tests = append(tests, struct{ name, agent, errSub string }{"dynamic", p, "build it with CGO_ENABLED=0"})
			break
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteInitramfs(io.Discard, tt.agent)
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("error = %v, want one containing %q", err, tt.errSub)
			}
		})
	}
}

// dynamic reports whether path is an ELF file with a program interpreter.
func dynamic(path string) bool {
	err := checkStatic(path)
	return err != nil && strings.Contains(err.Error(), "dynamically linked")
}
