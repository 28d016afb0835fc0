package imagebuild

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bangerdev/banger/internal/host/ext4img"
)

// TestWriteTreeStaysInTheRoot: writeTree runs on the host after build
// commands, which may have turned directories of the image into links
// out of it. Files land in the image, through links resolved inside it,
// and never outside.
func TestWriteTreeStaysInTheRoot(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	for _, d := range []string{"usr/lib/systemd/system", "usr/local", "etc/systemd/system", "elsewhere"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("usr/lib", filepath.Join(root, "lib"))                         // merged /usr, relative
	os.Symlink(outside, filepath.Join(root, "usr/local/bin"))                 // left by a build, absolute
	os.Symlink("/elsewhere", filepath.Join(root, "etc/systemd/system/wants")) // absolute, inside
	files := []ext4img.File{
		{Path: "/usr/local/bin/banger-agent", Mode: 0o755, Content: []byte("agent")},
		{Path: "/lib/systemd/system/a.service", Mode: 0o644, Content: []byte("unit")},
		{Path: "/etc/systemd/system/wants/a.service", Mode: os.ModeSymlink, Target: "/lib/systemd/system/a.service"},
	}
	if err := writeTree(root, files); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("writeTree wrote outside the root: %v", entries)
	}
	for _, f := range []struct{ path, want string }{
		// The build's link to outside, resolved inside the root.
		{filepath.Join(outside, "banger-agent"), "agent"},
		{"usr/lib/systemd/system/a.service", "unit"},
	} {
		if b, err := os.ReadFile(filepath.Join(root, f.path)); err != nil || string(b) != f.want {
			t.Errorf("%s in the root = %q, %v; want %q", f.path, b, err, f.want)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "elsewhere/a.service")); err != nil || target != "/lib/systemd/system/a.service" {
		t.Errorf("link through an in-image link: %q, %v", target, err)
	}
}
