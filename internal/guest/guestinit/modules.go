package guestinit

import (
	"bytes"
	"fmt"
	"path"
	"strings"
)

// ModulesFile is where the initramfs lists the kernel modules Init loads.
//
// Format: the first line is "# release <kernel release>"; every further
// non-empty line is a module file path relative to
// /lib/modules/<release>/, in load order (dependencies first), optionally
// followed by the word "optional". Other lines starting with '#' are
// comments. FormatModules writes it, ParseModules reads it.
const ModulesFile = "/etc/banger/modules"

// Module is one line of ModulesFile.
type Module struct {
	// Path is relative to /lib/modules/<release>/, e.g.
	// "kernel/drivers/block/virtio_blk.ko".
	Path string
	// Optional modules may be absent from the initramfs or fail to load:
	// Init logs that and boots on. A required module that is missing or
	// fails to load stops the boot.
	Optional bool
}

// Name is the module's name as the kernel knows it: the file name without
// .ko and a compression suffix.
func (m Module) Name() string {
	n := path.Base(m.Path)
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		n = strings.TrimSuffix(n, suf)
	}
	return strings.TrimSuffix(n, ".ko")
}

// FormatModules renders ModulesFile for release.
func FormatModules(release string, mods []Module) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# release %s\n", release)
	for _, m := range mods {
		b.WriteString(m.Path)
		if m.Optional {
			b.WriteString(" optional")
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseModules reads ModulesFile.
func ParseModules(data []byte) (release string, mods []Module, err error) {
	lines := strings.Split(string(data), "\n")
	first := strings.Fields(lines[0])
	if len(first) != 3 || first[0] != "#" || first[1] != "release" {
		return "", nil, fmt.Errorf("%s: first line must be \"# release <kernel release>\", got %q; rebuild the initramfs with banger's kernel staging", ModulesFile, lines[0])
	}
	release = first[2]
	for i, line := range lines[1:] {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		m := Module{Path: f[0]}
		switch {
		case len(f) == 2 && f[1] == "optional":
			m.Optional = true
		case len(f) != 1:
			return "", nil, fmt.Errorf("%s line %d: %q: want a module path, optionally followed by \"optional\"", ModulesFile, i+2, line)
		}
		if path.IsAbs(m.Path) || path.Clean(m.Path) != m.Path || strings.HasPrefix(m.Path, "../") || m.Path == ".." {
			return "", nil, fmt.Errorf("%s line %d: module path %q must be clean and relative to /lib/modules/%s/", ModulesFile, i+2, m.Path, release)
		}
		mods = append(mods, m)
	}
	return release, mods, nil
}
