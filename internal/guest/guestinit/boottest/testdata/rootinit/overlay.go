package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	overlayMarker = "BANGER-OVERLAY"
	// probeFile is written through the overlay; renameDir is a directory
	// of the image (the lower) renamed to renamedDir.
	probeFile  = "/etc/banger-probe"
	renameDir  = "/etc/banger-dir"
	renamedDir = "/etc/banger-dir-renamed"
	rootfsDir  = "/run/banger/rootfs"
)

// overlayReport prints one line:
//
//	BANGER-OVERLAY probe=<contents|absent> remount=<ok|error> fsconfig=<ok|error>
//	  df-root=<bytes> df-upper=<bytes> df-lower=<bytes> uniform-dev=<bool> vda-ro=<0|1>
//	  lower-rw=<ok|error> vda-write=<ok|error>
//	  rename=<ok|absent|error> upper-has-probe=<bool>
//
// remount is mount(2) as util-linux 2.38 (Debian 12) makes it for
// systemd-remount-fs with the image's fstab root entry ("defaults,
// errors=remount-ro"); fsconfig is the same through the new mount API,
// as util-linux 2.39 and later make it. Then it writes rootinit.token=
// into the probe file (through /, after the remounts, so / must still be
// writable) and renames renameDir.
func overlayReport(cmdline string) {
	var f []string
	add := func(k, v string) { f = append(f, k+"="+v) }
	if b, err := os.ReadFile(probeFile); err == nil {
		add("probe", strings.TrimSpace(string(b)))
	} else {
		add("probe", "absent")
	}
	add("remount", result(unix.Mount("/dev/vda", "/", "ext4", unix.MS_REMOUNT, "errors=remount-ro")))
	add("fsconfig", result(fsconfigRemount()))
	add("df-root", dfBytes("/"))
	add("df-upper", dfBytes(rootfsDir+"/upper"))
	add("df-lower", dfBytes(rootfsDir+"/lower"))
	var root, lowerFile unix.Stat_t
	uerr := unix.Stat("/", &root)
	lerr := unix.Stat("/sbin/init", &lowerFile) // not copied up
	add("uniform-dev", fmt.Sprint(uerr == nil && lerr == nil && root.Dev == lowerFile.Dev))
	ro, _ := os.ReadFile("/sys/block/vda/ro")
	add("vda-ro", strings.TrimSpace(string(ro)))
	// A root guest trying to change the shared base: remount the lower
	// read-write, or write its device directly. Both must fail.
	add("lower-rw", result(unix.Mount("", rootfsDir+"/lower", "", unix.MS_REMOUNT, "")))
	add("vda-write", result(writeDevice("/dev/vda")))

	token := "none"
	for _, w := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(w, "rootinit.token="); ok {
			token = v
		}
	}
	werr := os.WriteFile(probeFile, []byte(token+"\n"), 0o644)
	switch _, err := os.Stat(renameDir); {
	case errors.Is(err, fs.ErrNotExist):
		add("rename", "absent")
	default:
		add("rename", result(os.Rename(renameDir, renamedDir)))
	}
	unix.Sync()
	_, serr := os.Stat(rootfsDir + "/upper/upper" + probeFile)
	add("upper-has-probe", fmt.Sprint(werr == nil && serr == nil))
	if werr != nil {
		fmt.Printf("rootinit: writing %s: %v\n", probeFile, werr)
	}
	fmt.Println(overlayMarker + " " + strings.Join(f, " "))
}

func fsconfigRemount() error {
	fd, err := unix.Fspick(unix.AT_FDCWD, "/", unix.FSPICK_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "errors", "remount-ro"); err != nil {
		return err
	}
	return unix.FsconfigReconfigure(fd)
}

func result(err error) string {
	if err != nil {
		return strings.ReplaceAll(err.Error(), " ", "_")
	}
	return "ok"
}

func dfBytes(p string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return "error"
	}
	return fmt.Sprint(st.Blocks * uint64(st.Bsize))
}

func writeDevice(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 4096), 1<<20); err != nil {
		return err
	}
	return f.Sync()
}
