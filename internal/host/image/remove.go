package image

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/internal/host/provision"
)

// removeTree deletes a staging or image directory, first undoing any mount
// a crashed build left inside it (a loop-mounted rootfs with proc, sys and
// a bind of /dev in its chroot): deleting through those mounts would
// delete the host's files. It refuses while anything stays mounted.
func removeTree(dir string) error {
	if mountedUnder(dir) {
		if err := provision.Cleanup(dir); err != nil {
			return fmt.Errorf("unmounting what a build left in %s: %w", dir, err)
		}
		if mountedUnder(dir) {
			return fmt.Errorf("%s still has mounts inside: unmount them (see /proc/self/mountinfo) and restart bangerd", dir)
		}
	}
	return os.RemoveAll(dir)
}

// mountedUnder reports whether any mount point lies inside dir.
func mountedUnder(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
