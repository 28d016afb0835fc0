package image

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/loopfs"
	"github.com/bangerdev/banger/internal/shared/sizetext"
	"github.com/google/go-cmp/cmp"
)

// TestCreateOnAFullFilesystem puts the catalog on a small filesystem of
// its own: an image whose Need is more than is free is refused before
// anything is written, naming what it needs and what is free; one that
// fills the filesystem while it is written (no Need, or more than it
// said) fails saying so, not with a bare ENOSPC from a staging path.
// Either way no staging directory and no record remain, and the catalog
// takes an image that fits afterwards.
func TestCreateOnAFullFilesystem(t *testing.T) {
	f := newFixture(t)
	mnt := loopfs.Mount(t, 128<<20)
	f.cat.Root = filepath.Join(mnt, "images")
	ctx := context.Background()
	if err := os.Mkdir(f.cat.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	free := loopfs.Free(t, mnt)

	// fill writes n bytes of random data (nothing sparse) as the rootfs,
	// and the rest of a bootable image.
	fill := func(n int64) func(context.Context, *Staging, *Manifest) error {
		return func(_ context.Context, st *Staging, m *Manifest) error {
			for _, k := range []Kind{Vmlinux, Initrd} {
				if err := os.WriteFile(st.Path(k), []byte(k), 0o600); err != nil {
					return err
				}
			}
			b := make([]byte, n)
			rand.Read(b)
			return os.WriteFile(st.Path(Rootfs), b, 0o600)
		}
	}
	tests := []struct {
		name  string
		spec  Spec
		parts []string
	}{
		{"need over what is free", Spec{Name: "needy", Need: free + 1<<20, Fill: func(context.Context, *Staging, *Manifest) error {
			t.Error("Fill ran for an image whose Need is more than is free")
			return nil
		}}, []string{"image needy needs at least", "free in " + f.cat.Root, "it has " + sizetext.Down(free), "free space there"}},
		{"fills the disk with no need given", Spec{Name: "filler", Fill: fill(free + 8<<20)},
			[]string{"image filler needs more free space than " + f.cat.Root, "which had " + sizetext.Down(free) + " free", "free space in " + f.cat.Root, "no space left on device"}},
		{"fills the disk past its need", Spec{Name: "liar", Need: 1 << 20, Fill: fill(free + 8<<20)},
			[]string{"image liar needs more free space than " + f.cat.Root, "nothing of it was kept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.cat.Create(ctx, tt.spec, &progressLog{})
			if !errors.Is(err, api.ErrFailedPrecondition) {
				t.Fatalf("Create: %v, want a failed_precondition error", err)
			}
			for _, p := range tt.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("%q does not say %q", err, p)
				}
			}
			if diff := cmp.Diff([]string(nil), loopfs.Tree(t, f.cat.Root, nil)); diff != "" {
				t.Errorf("the catalog after the failed create (-want +got):\n%s", diff)
			}
			if _, err := f.cat.Get(ctx, tt.spec.Name); err == nil {
				t.Errorf("image %s was recorded", tt.spec.Name)
			}
		})
	}

	img, err := f.cat.Create(ctx, Spec{Name: "fits", Need: 8 << 20, Fill: fill(8 << 20)}, &progressLog{})
	if err != nil {
		t.Fatalf("an image that fits, after the failures: %v", err)
	}
	if got := img.Artifacts[Rootfs].Size; got != 8<<20 {
		t.Errorf("rootfs of the image that fits: %d bytes", got)
	}
}

// TestRegisterNeed: what a register copies is counted by its blocks, so a
// sparse rootfs counts what it holds, not its size; a linked register
// copies nothing.
func TestRegisterNeed(t *testing.T) {
	f := newFixture(t)
	req := f.request("x")
	got := RegisterNeed(req)
	fi, err := os.Stat(f.rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 || got >= fi.Size() {
		t.Errorf("RegisterNeed of a %d-byte sparse rootfs and a small kernel set: %d, want more than 0 and less than the rootfs's size", fi.Size(), got)
	}
	req.Link = true
	if got := RegisterNeed(req); got != 0 {
		t.Errorf("RegisterNeed with link: %d, want 0", got)
	}
}
