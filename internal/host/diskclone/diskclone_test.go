package diskclone

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// extent is a range of a test file that holds data.
type extent struct {
	off, len int64
	zeros    bool // write explicit zeros instead of random bytes
}

// makeSparse creates path with the given apparent size and data only in
// extents, and returns the number of non-zero data bytes written.
func makeSparse(tb testing.TB, path string, size int64, extents []extent) int64 {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	var data int64
	for _, e := range extents {
		buf := make([]byte, e.len)
		if !e.zeros {
			for i := range buf {
				buf[i] = byte(rng.Uint32()) | 1 // never zero, so no chunk is skipped
			}
			data += e.len
		}
		if _, err := f.WriteAt(buf, e.off); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
	return data
}

// scattered returns n extents of length each, spread evenly over size.
func scattered(size int64, n int, length int64) []extent {
	out := make([]extent, n)
	step := size / int64(n)
	for i := range out {
		out[i] = extent{off: int64(i)*step + step/3, len: length}
	}
	return out
}

// sameContent compares two files chunk by chunk, so a 1 GiB file does not
// need 1 GiB of memory.
func sameContent(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 4*mib), make([]byte, 4*mib)
	for off := int64(0); ; off += int64(len(ba)) {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			t.Fatalf("%s and %s differ in the chunk at offset %d", a, b, off)
		}
		if erra != nil || errb != nil {
			if (erra == io.EOF || erra == io.ErrUnexpectedEOF) && (errb == io.EOF || errb == io.ErrUnexpectedEOF) {
				return
			}
			t.Fatalf("reading: %v, %v", erra, errb)
		}
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestCloneKeepsContentAndHoles(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		extents []extent
	}{
		{name: "empty", size: 0},
		{name: "all hole", size: 64 * mib},
		{name: "all data", size: 3*mib + 123, extents: []extent{{off: 0, len: 3*mib + 123}}},
		{name: "data at both ends", size: 64 * mib, extents: []extent{{off: 0, len: 100}, {off: 64*mib - 100, len: 100}}},
		{name: "unaligned size", size: 10*mib + 17, extents: []extent{{off: 5 * mib, len: 5*mib + 17}}},
		{name: "written zeros become holes", size: 32 * mib, extents: []extent{{off: 4 * mib, len: 8 * mib, zeros: true}, {off: 20 * mib, len: mib}}},
		{
			name:    "1 GiB with a few MiB",
			size:    gib,
			extents: append(scattered(gib, 5, mib), extent{off: gib - 4*kib, len: 4 * kib}),
		},
	}
	paths := []struct {
		name  string
		clone func(dst, src string) (Method, error)
		want  func(t *testing.T, dir string) Method
	}{
		{
			name:  "Clone",
			clone: Clone,
			want: func(t *testing.T, dir string) Method {
				ok, err := ReflinkSupported(dir)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					return MethodReflink
				}
				return MethodSparseCopy
			},
		},
		{
			name:  "sparse copy",
			clone: func(dst, src string) (Method, error) { return clone(dst, src, false) },
			want:  func(*testing.T, string) Method { return MethodSparseCopy },
		},
	}
	for _, tt := range tests {
		for _, p := range paths {
			t.Run(tt.name+"/"+p.name, func(t *testing.T) {
				dir := t.TempDir()
				src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
				data := makeSparse(t, src, tt.size, tt.extents)
				if err := os.Chmod(src, 0o640); err != nil {
					t.Fatal(err)
				}

				method, err := p.clone(dst, src)
				if err != nil {
					t.Fatalf("clone: %v", err)
				}
				if want := p.want(t, dir); method != want {
					t.Errorf("method = %q, want %q", method, want)
				}

				srcInfo, err := os.Stat(src)
				if err != nil {
					t.Fatal(err)
				}
				dstInfo, err := os.Stat(dst)
				if err != nil {
					t.Fatal(err)
				}
				type shape struct {
					Size int64
					Mode fs.FileMode
				}
				if diff := cmp.Diff(shape{srcInfo.Size(), srcInfo.Mode()}, shape{dstInfo.Size(), dstInfo.Mode()}); diff != "" {
					t.Errorf("dst size/mode differ from src (-src +dst):\n%s", diff)
				}
				sameContent(t, src, dst)

				// Allow a filesystem block of rounding per extent plus
				// a little metadata; a full copy would be far larger.
				if got, limit := allocated(t, dst), data+int64(len(tt.extents)+1)*64*kib; method == MethodSparseCopy && got > limit {
					t.Errorf("dst allocates %d bytes for %d bytes of data (limit %d): holes were filled", got, data, limit)
				}
				if _, err := os.Lstat(dst + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s.tmp left behind: %v", dst, err)
				}
			})
		}
	}
}

func TestCloneRefusesExistingDst(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dst string)
	}{
		{"file", func(t *testing.T, dst string) {
			if err := os.WriteFile(dst, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, dst string) {
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T, dst string) {
			if err := os.Symlink("nowhere", dst); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
			makeSparse(t, src, 8*mib, []extent{{off: mib, len: mib}})
			tt.setup(t, dst)
			before := listDir(t, dir)

			_, err := Clone(dst, src)
			if err == nil {
				t.Fatal("Clone succeeded over an existing destination")
			}
			want := fmt.Sprintf("destination %s already exists: remove it or choose another path", dst)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			if diff := cmp.Diff(before, listDir(t, dir)); diff != "" {
				t.Errorf("Clone changed the directory (-before +after):\n%s", diff)
			}
		})
	}
}

func TestCloneErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, src string)
		want  string
	}{
		{"missing source", func(*testing.T, string) {}, "no such file or directory"},
		{"source is a directory", func(t *testing.T, src string) {
			if err := os.Mkdir(src, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
			tt.setup(t, src)
			before := listDir(t, dir)
			_, err := Clone(dst, src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Clone error = %v, want one containing %q", err, tt.want)
			}
			if diff := cmp.Diff(before, listDir(t, dir)); diff != "" {
				t.Errorf("failed Clone changed the directory (-before +after):\n%s", diff)
			}
		})
	}
}

// A crash mid-clone leaves dst.tmp behind; running the clone again must work.
func TestCloneReplacesStaleTmp(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	makeSparse(t, src, 4*mib, []extent{{off: 0, len: 100}})
	if err := os.WriteFile(dst+".tmp", bytes.Repeat([]byte("stale"), 2*int(mib)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Clone(dst, src); err != nil {
		t.Fatalf("Clone: %v", err)
	}
	sameContent(t, src, dst)
	if diff := cmp.Diff([]string{"dst.img", "src.img"}, listDir(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

func TestReflinkSupportedErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := ReflinkSupported(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "make sure the directory exists and is writable") {
		t.Errorf("ReflinkSupported(missing dir) error = %v, want a not-exist error naming the fix", err)
	}

	if os.Geteuid() == 0 {
		t.Log("skipping the read-only directory case: root writes anywhere")
		return
	}
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if _, err := ReflinkSupported(ro); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("ReflinkSupported(read-only dir) error = %v, want permission error", err)
	}
}

// Whatever filesystem the temp dir is on, the probe must answer and leave
// nothing behind.
func TestReflinkSupportedTempDir(t *testing.T) {
	dir := t.TempDir()
	ok, err := ReflinkSupported(dir)
	if err != nil {
		t.Fatalf("ReflinkSupported(%s): %v", dir, err)
	}
	fsType := filesystem(t, dir)
	t.Logf("temp dir %s is on %s: reflink supported = %v", dir, fsType, ok)
	switch fsType {
	case "ext4", "tmpfs":
		if ok {
			t.Errorf("ReflinkSupported = true on %s, which cannot reflink", fsType)
		}
	case "xfs", "btrfs":
		// Usually true, but XFS may be formatted without reflink.
	}
	if diff := cmp.Diff([]string(nil), listDir(t, dir)); diff != "" {
		t.Errorf("probe left files behind:\n%s", diff)
	}
}

func TestReflinkOnXFS(t *testing.T) {
	mnt := mountXFS(t)

	ok, err := ReflinkSupported(mnt)
	if err != nil {
		t.Fatalf("ReflinkSupported(%s): %v", mnt, err)
	}
	if !ok {
		t.Fatalf("ReflinkSupported(%s) = false on XFS formatted with reflink=1", mnt)
	}

	src, dst := filepath.Join(mnt, "src.img"), filepath.Join(mnt, "dst.img")
	makeSparse(t, src, gib, scattered(gib, 8, mib))
	method, err := Clone(dst, src)
	if err != nil {
		t.Fatalf("Clone: %v", err)
	}
	if method != MethodReflink {
		t.Errorf("Clone method = %q on XFS, want %q", method, MethodReflink)
	}
	sameContent(t, src, dst)

	// The sparse fallback must work here too.
	sparse := filepath.Join(mnt, "sparse.img")
	if method, err := clone(sparse, src, false); err != nil || method != MethodSparseCopy {
		t.Fatalf("sparse clone on XFS = %q, %v", method, err)
	}
	sameContent(t, src, sparse)
}

// mountXFS loop-mounts a fresh 512 MiB XFS filesystem with reflink enabled
// and returns its mount point. It is unmounted and its loop device detached
// when the test ends.
func mountXFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: loop-mounting an XFS image needs root; run the tests as root (CI does)")
	}
	for _, tool := range []string{"mkfs.xfs", "mount", "umount", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found (%v); install xfsprogs and util-linux", tool, err)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(512 * mib); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "mkfs.xfs", "-q", "-m", "reflink=1", img)

	// Registered before mounting, so a half-done mount is cleaned up too.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", mnt, err, out)
		}
		// mount -o loop sets autoclear, so umount normally detached the
		// device already; detach whatever is still attached.
		out, err := exec.Command("losetup", "-j", img, "-O", "NAME", "-n").Output()
		if err != nil {
			t.Errorf("losetup -j %s: %v", img, err)
			return
		}
		for _, dev := range strings.Fields(string(out)) {
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v: %s", dev, err, out)
			}
		}
	})
	run(t, "mount", "-o", "loop", img, mnt)
	if got := filesystem(t, mnt); got != "xfs" {
		t.Fatalf("%s is on %s after mounting, want xfs", mnt, got)
	}
	return mnt
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func filesystem(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4" // also ext2/ext3, which cannot reflink either
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("filesystem with magic %#x", st.Type)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func BenchmarkCloneSparse1GiB(b *testing.B)  { benchmarkCloneSparse(b, gib) }
func BenchmarkCloneSparse16GiB(b *testing.B) { benchmarkCloneSparse(b, 16*gib) }

// benchmarkCloneSparse times the sparse copy (never reflink) of a source of
// the given apparent size holding 8 MiB of data in 64 scattered extents.
func benchmarkCloneSparse(b *testing.B, size int64) {
	dir := b.TempDir()
	src, dst := filepath.Join(dir, "src.img"), filepath.Join(dir, "dst.img")
	makeSparse(b, src, size, scattered(size, 64, 128*kib))
	for b.Loop() {
		if _, err := clone(dst, src, false); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(dst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
