package ext4img

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func needTools(t *testing.T) {
	for _, b := range []string{"mkfs.ext4", "debugfs", "resize2fs", "e2fsck"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install e2fsprogs)", b)
		}
	}
}

func TestMakeWriteReadGrow(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(src, ".ssh", "authorized_keys"), []byte("ssh-ed25519 AAAA test\n"), 0o600)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755)

	img := filepath.Join(dir, "seed.ext4")
	tools := New()
	if err := tools.MakeFromDir(ctx, img, src, "banger-work", 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := tools.MakeFromDir(ctx, img, src, "", 64<<20); err == nil {
		t.Error("MakeFromDir over an existing file succeeded")
	}
	sb, err := ReadSuperblock(img)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Label != "banger-work" || sb.Size() != 64<<20 || sb.Used() <= 0 || sb.Used() >= sb.Size() {
		t.Errorf("superblock %+v", sb)
	}

	got, err := tools.ReadFile(ctx, img, "/.ssh/authorized_keys")
	if err != nil || string(got) != "ssh-ed25519 AAAA test\n" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}

	files := []File{
		{Path: "/usr/local/lib/banger/agent", Mode: 0o755, Content: []byte("binary")},
		{Path: "/etc/systemd/system/multi-user.target.wants/x.service", Mode: os.ModeSymlink, Target: "/etc/systemd/system/x.service"},
		{Path: "/.config/opencode/auth.json", Mode: 0o600, UID: 0, GID: 0, Content: []byte(`{"k":1}`)},
	}
	// Twice: writing is idempotent and replaces.
	for range 2 {
		if err := tools.WriteFiles(ctx, img, files); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := tools.ReadFile(ctx, img, "/usr/local/lib/banger/agent"); string(b) != "binary" {
		t.Errorf("written file reads %q", b)
	}

	out := filepath.Join(dir, "dump")
	os.MkdirAll(out, 0o755)
	if err := tools.DumpDir(ctx, img, "/.config", out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(out, ".config", "opencode", "auth.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dumped auth.json: %v %v", fi, err)
	}
	fi, err = os.Stat(filepath.Join(dirOf(t, tools, ctx, img), "usr/local/lib/banger/agent"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("dumped agent mode: %v %v", fi, err)
	}
	if ok, _ := tools.Exists(ctx, img, "/nope"); ok {
		t.Error("Exists(/nope) = true")
	}
	// The filesystem is still consistent after the edits.
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck after edits: %v\n%s", err, out)
	}

	if err := tools.Grow(ctx, img, 128<<20); err != nil {
		t.Fatal(err)
	}
	if sb, _ := ReadSuperblock(img); sb.Size() != 128<<20 {
		t.Errorf("after grow: size %d", sb.Size())
	}
	if err := tools.Grow(ctx, img, 32<<20); err == nil {
		t.Error("shrinking succeeded")
	}
}

func dirOf(t *testing.T, tools *Tools, ctx context.Context, img string) string {
	out := t.TempDir()
	if err := tools.DumpDir(ctx, img, "/usr", out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNotExt4(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, make([]byte, 4096), 0o600)
	if _, err := ReadSuperblock(p); !errors.Is(err, ErrNotExt4) {
		t.Errorf("zeros: %v", err)
	}
	os.WriteFile(p, []byte("tiny"), 0o600)
	if _, err := ReadSuperblock(p); !errors.Is(err, ErrNotExt4) {
		t.Errorf("tiny: %v", err)
	}
}
