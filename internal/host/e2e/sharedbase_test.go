package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/filedigest"
)

// fileSHA256 is the hex sha256 of a file's bytes.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	sum, err := filedigest.SHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// imageRootfs is the path of an image's rootfs artifact.
func imageRootfs(t *testing.T, e *env, name string) string {
	t.Helper()
	var img api.Image
	if err := json.Unmarshal([]byte(e.must("image", "show", name, "--json").stdout), &img); err != nil {
		t.Fatal(err)
	}
	for _, a := range img.Artifacts {
		if a.Kind == "rootfs" {
			return a.Path
		}
	}
	t.Fatalf("image %s has no rootfs artifact: %+v", name, img.Artifacts)
	return ""
}

// Two VMs of one image share its rootfs read-only, each with its own
// overlay: a file one writes to /etc is absent from the other, survives
// stop/start of its VM, and is gone once the VM is deleted (a new VM of
// the same name lacks it); removing the image is refused naming the VMs,
// which still boot; the base's bytes never change.
func TestSharedBaseOverlay(t *testing.T) {
	e := vmEnv(t)
	for _, name := range []string{"sba", "sbb"} {
		r := e.must("vm", "create", "--name", name, "--memory", "1GiB", "--disk", "2GiB")
		if !strings.Contains(r.stderr, "✓ upper disk") || strings.Contains(r.stderr, "clone rootfs") {
			t.Errorf("create %s did not make an upper disk instead of a rootfs clone:\n%s", name, r.stderr)
		}
	}
	rootfs := imageRootfs(t, e, "base")
	before := fileSHA256(t, rootfs)
	for _, name := range []string{"sba", "sbb"} {
		if fs := strings.TrimSpace(e.must("vm", "ssh", name, "--", "findmnt", "-no", "FSTYPE", "/").stdout); fs != "overlay" {
			t.Errorf("%s: / is %q, want overlay", name, fs)
		}
		// The host only extends the disk files; the guest grew both file
		// systems to their 2 GiB disks at boot (df counts less the ext4
		// metadata).
		sizes := strings.Fields(e.must("vm", "ssh", name, "--", "df", "-B1", "--output=size", "/", "/root").stdout)
		if len(sizes) != 3 {
			t.Fatalf("%s: df: %q", name, sizes)
		}
		for i, mnt := range []string{"/", "/root"} {
			if n, _ := strconv.ParseInt(sizes[i+1], 10, 64); n < 1800<<20 || n > 2<<30 {
				t.Errorf("%s: df %s shows %s bytes, want about the 2 GiB of --disk", name, mnt, sizes[i+1])
			}
		}
	}
	e.must("vm", "ssh", "sba", "--", "sh", "-c", "'echo from-sba > /etc/banger-e2e-mark && sync'")
	if r := e.runWith(e.extra, "vm", "ssh", "sbb", "--", "test", "!", "-e", "/etc/banger-e2e-mark"); r.code != 0 {
		t.Errorf("sbb sees sba's /etc file (exit %d): %s", r.code, r.stderr)
	}

	r := e.runWith(e.extra, "image", "rm", "base")
	if r.code == 0 || !strings.Contains(r.stderr, "sba") || !strings.Contains(r.stderr, "sbb") {
		t.Errorf("image rm of a base in use: exit %d, want a refusal naming sba and sbb:\n%s", r.code, r.stderr)
	}

	e.must("vm", "stop", "sba")
	e.must("vm", "start", "sba")
	if out := e.must("vm", "ssh", "sba", "--", "cat", "/etc/banger-e2e-mark").stdout; strings.TrimSpace(out) != "from-sba" {
		t.Errorf("after stop/start sba's /etc file reads %q", out)
	}

	e.must("vm", "delete", "sba")
	e.must("vm", "create", "--name", "sba", "--memory", "1GiB", "--disk", "2GiB")
	if r := e.runWith(e.extra, "vm", "ssh", "sba", "--", "test", "!", "-e", "/etc/banger-e2e-mark"); r.code != 0 {
		t.Errorf("a new VM named sba has the deleted one's /etc file (exit %d): %s", r.code, r.stderr)
	}
	e.must("vm", "delete", "sba")
	e.must("vm", "delete", "sbb")
	if after := fileSHA256(t, rootfs); after != before {
		t.Errorf("the shared base changed: sha256 %s before, %s after", before, after)
	}
	verifyClean(t, e)
}
