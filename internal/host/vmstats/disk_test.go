package vmstats

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

// A sparse disk's size is what the guest sees; its used bytes are the
// blocks written. A missing disk is left out.
func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	sparse, full := filepath.Join(dir, "rootfs.ext4"), filepath.Join(dir, "work.ext4")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	if _, err := f.WriteAt(chunk, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(full, chunk, 0o600); err != nil {
		t.Fatal(err)
	}

	st := new(Sampler).Sample(context.Background(), Target{Name: "vm", Disks: []Disk{
		{Name: "rootfs", Path: sparse}, {Name: "work", Path: full}, {Name: "gone", Path: filepath.Join(dir, "gone")},
	}})
	if len(st.Disks) != 2 {
		t.Fatalf("disks %+v, want rootfs and work (the missing one left out)", st.Disks)
	}
	root := st.Disks[0]
	if root.UsedBytes == root.SizeBytes {
		t.Skipf("the filesystem of %s does not keep files sparse (used = size = %d)", dir, root.SizeBytes)
	}
	if root.Name != "rootfs" || root.SizeBytes != 64<<20 || root.UsedBytes < 1<<20 || root.UsedBytes > 2<<20 {
		t.Errorf("sparse disk %+v: want size 64MiB and used between 1MiB (written) and 2MiB", root)
	}
	// The written file occupies at least its size (whole blocks).
	work := st.Disks[1]
	if diff := cmp.Diff(api.DiskStats{Name: "work", SizeBytes: 1 << 20}, api.DiskStats{Name: work.Name, SizeBytes: work.SizeBytes}); diff != "" || work.UsedBytes < 1<<20 {
		t.Errorf("written disk %+v: want size 1MiB, used >= 1MiB (%s)", work, diff)
	}
}
