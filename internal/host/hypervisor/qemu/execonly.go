package qemu

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// execOnly is the QEMU binary as the VM user runs it: a copy in a sealed
// memfd that only root may read (mode 0111). The kernel makes a process
// whose program its user cannot read non-dumpable (see would_dump in
// fs/exec.c), and a non-dumpable process can be neither ptraced nor read
// through /proc/PID/mem, environ or fd by another process of the same
// user. Every VM's QEMU runs as the one VM user, so without this a guest
// that took over its QEMU could take over every other VM's QEMU too.
//
// A QEMU started from a memfd cannot find its firmware relative to its
// own path, so dataDirs are QEMU's data directories (`-L help` of the
// real binary), given back to it with -L.
type execOnly struct {
	mu       sync.Mutex
	bin      string
	size     int64
	mtime    time.Time
	f        *os.File
	dataDirs []string
}

// get returns the memfd copy of bin and QEMU's data directories, making
// them again when bin changed (a QEMU upgrade). The file stays open for
// the driver's life: the QEMUs started from it share its pages.
func (e *execOnly) get(bin string) (*os.File, []string, error) {
	fi, err := os.Stat(bin)
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f != nil && e.bin == bin && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
		return e.f, e.dataDirs, nil
	}
	out, err := exec.Command(bin, "-L", "help").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("asking %s for its data directories (-L help): %w", bin, err)
	}
	var dirs []string
	for _, d := range strings.Fields(string(out)) {
		dirs = append(dirs, filepath.Clean(d))
	}
	src, err := os.Open(bin)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("qemu", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, nil, fmt.Errorf("copying QEMU into memory: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:qemu")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("copying %s into memory: %w", bin, err)
	}
	if err := f.Chmod(0o111); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("sealing the QEMU copy: %w", err)
	}
	if e.f != nil {
		e.f.Close() // QEMUs started from the old copy keep it mapped
	}
	e.bin, e.size, e.mtime, e.f, e.dataDirs = bin, fi.Size(), fi.ModTime(), f, dirs
	return f, dirs, nil
}
