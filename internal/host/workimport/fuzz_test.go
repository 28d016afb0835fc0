package workimport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FuzzBundleHeader: whatever a guest puts at the head of its bundle,
// checkBundleHeader either refuses it or returns only banger's two refs
// (the work ref among them) and full object ids, within maxHeader bytes.
func FuzzBundleHeader(f *testing.F) {
	id := strings.Repeat("a", 40)
	f.Add([]byte("# v2 git bundle\n-" + id + " base\n" + id + " refs/banger/head\n" + id + " refs/banger/work\n\nPACK"))
	f.Add([]byte("# v3 git bundle\n@object-format=sha1\n" + id + " refs/banger/work\n\n"))
	f.Add([]byte("# v2 git bundle\n" + id + " refs/heads/main\n" + id + " refs/banger/work\n\n"))
	f.Add([]byte("# v2 git bundle\n" + id + " refs/banger/work\n" + id + " refs/banger/work\n\n"))
	f.Add([]byte("# v2 git bundle\n-" + id[:39] + "\n\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "bundle")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		h, err := checkBundleHeader(path, "sha1")
		if err != nil {
			return
		}
		if _, ok := h.refs[agentproto.BundleRefWork]; !ok {
			t.Fatalf("accepted a header without %s: %q", agentproto.BundleRefWork, data)
		}
		for ref, id := range h.refs {
			if (ref != agentproto.BundleRefWork && ref != agentproto.BundleRefHead) || !isHexID(id) {
				t.Fatalf("accepted ref %q -> %q", ref, id)
			}
		}
		for _, p := range h.prerequisites {
			if !isHexID(p) {
				t.Fatalf("accepted prerequisite %q", p)
			}
		}
		if h.size > maxHeader || h.size > int64(len(data)) {
			t.Fatalf("header size %d of %d bytes", h.size, len(data))
		}
	})
}
