package qemu

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// passedFiles are the files a daemon running as root opens for a QEMU that
// runs as the VM user. QEMU (as that user) can open none of the VM's files
// by path: the runtime directory is root's (0700), the disks and console
// log are root's (0600), and the image's kernel and initrd may sit in a
// root-only directory. So the daemon opens each one and QEMU inherits the
// descriptor; a VM user process can reach another VM's files by no path.
type passedFiles struct {
	// extra is cmd.ExtraFiles: extra[i] is descriptor 3+i in QEMU.
	extra []*os.File
	// shared are files of extra the driver keeps for other VMs.
	shared map[*os.File]bool
	fds    Passed
	// pid is the pid file, locked (an open file description lock) for
	// QEMU, which inherits it: the lock lasts as long as QEMU.
	pid *os.File
}

// add makes f the next inherited descriptor and returns its number in QEMU.
func (pf *passedFiles) add(f *os.File) int {
	pf.extra = append(pf.extra, f)
	return 2 + len(pf.extra)
}

// addShared is add for a file the driver keeps open for other VMs too.
func (pf *passedFiles) addShared(f *os.File) int {
	if pf.shared == nil {
		pf.shared = map[*os.File]bool{}
	}
	pf.shared[f] = true
	return pf.add(f)
}

// close closes the daemon's copies (QEMU keeps its own), but for the
// shared ones.
func (pf *passedFiles) close() {
	for _, f := range pf.extra {
		if !pf.shared[f] {
			f.Close()
		}
	}
}

// openPassed opens what QEMU needs for spec: sockets bound at p.QMP and
// p.Agent (root's, 0600; QEMU listens on them), the console log, the pid
// file (locked), memfd copies of the kernel and initrd, each disk
// read-only and (unless read-only) read-write, the NIC's TAP queue and
// the vhost-vsock device. On error it closes what it opened.
func openPassed(spec hypervisor.Spec, p Paths, m Machine, agent hypervisor.AgentTransport, vhostDev string, kernels *sharedCopies) (_ *passedFiles, err error) {
	pf := &passedFiles{}
	defer func() {
		if err != nil {
			pf.close()
		}
	}()
	pidf, err := os.OpenFile(p.PID, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the pid file: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(pidf.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		pidf.Close()
		return nil, fmt.Errorf("locking the pid file %s: %w: another QEMU runs in the VM's directory", p.PID, err)
	}
	pf.pid = pidf
	pf.add(pidf)

	if pf.fds.QMP, err = pf.bindSocket(p.QMP); err != nil {
		return nil, err
	}
	if agent != hypervisor.AgentVsock {
		if pf.fds.Agent, err = pf.bindSocket(p.Agent); err != nil {
			return nil, err
		}
	}
	console, err := os.OpenFile(p.Console, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the console log: %w", err)
	}
	pf.fds.Console = pf.add(console)

	kernel := spec.Boot.Vmlinuz
	if m == Microvm {
		kernel = spec.Boot.Vmlinux
	}
	k, err := kernels.get("kernel", kernel)
	if err != nil {
		return nil, err
	}
	pf.fds.Kernel = pf.addShared(k)
	if spec.Boot.Initrd != "" {
		if pf.fds.Initrd, err = pf.memfdCopy("initrd", spec.Boot.Initrd); err != nil {
			return nil, err
		}
	}
	for _, d := range spec.Disks {
		var fds DiskFDs
		ro, err := os.OpenFile(d.Path, os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("opening disk %s: %w", d.ID, err)
		}
		fds.RO = pf.add(ro)
		if !d.ReadOnly {
			rw, err := os.OpenFile(d.Path, os.O_RDWR, 0)
			if err != nil {
				return nil, fmt.Errorf("opening disk %s read-write: %w", d.ID, err)
			}
			fds.RW = pf.add(rw)
		}
		pf.fds.Disks = append(pf.fds.Disks, fds)
	}
	if spec.NIC != nil {
		tap, err := openTAP(spec.NIC.TAP)
		if err != nil {
			return nil, err
		}
		pf.fds.TAP = pf.add(tap)
	}
	if agent == hypervisor.AgentVsock {
		v, err := os.OpenFile(vhostDev, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", vhostDev, err)
		}
		pf.fds.VhostVsock = pf.add(v)
	}
	return pf, nil
}

// writePID records QEMU's pid in the locked pid file, for lockHolder.
func (pf *passedFiles) writePID(pid int) error {
	if _, err := pf.pid.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0); err != nil {
		return fmt.Errorf("writing the pid file: %w", err)
	}
	return nil
}

// bindSocket binds a unix socket at path, without listening: QEMU calls
// listen(2), which makes QEMU the peer a client's SO_PEERCRED names (the
// driver checks that the QMP socket is served by the PID it started).
// Only root can connect: the socket is 0600 and root's.
func (pf *passedFiles) bindSocket(path string) (int, error) {
	os.Remove(path)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("creating socket %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		f.Close()
		return 0, fmt.Errorf("binding socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		f.Close()
		os.Remove(path)
		return 0, fmt.Errorf("socket %s: %w", path, err)
	}
	return pf.add(f), nil
}

// memfdCopy copies path into a sealed memfd for this VM alone (the
// initrd, which carries the VM's boot payload). QEMU reads it through
// /proc/self/fd/N: reopening a memfd through /proc needs no permission on
// any directory, while the image's file may be in root's 0700 tree. The
// copy lives as long as QEMU, which holds the descriptor, and cannot be
// emptied once QEMU runs: QEMU maps the initrd from it (an emptied file
// ends the VM with SIGBUS); those mapped pages are the copy's own, so it
// costs no memory beyond what QEMU maps anyway.
func (pf *passedFiles) memfdCopy(name, path string) (int, error) {
	f, err := sealedCopy(name, path, 0o444)
	if err != nil {
		return 0, err
	}
	return pf.add(f), nil
}

// sealedCopy copies path into a memfd with mode, sealed against any
// change.
func sealedCopy(name, path string, mode os.FileMode) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the %s %s: %w", name, path, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("banger-"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("copying the %s into memory: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, err
	}
	if _, err := io.Copy(f, src); err != nil {
		return fail(fmt.Errorf("copying the %s %s into memory: %w", name, path, err))
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		return fail(fmt.Errorf("sealing the %s copy: %w", name, err))
	}
	return f, nil
}

// sharedCopies are sealed memfd copies of files many VMs read (the
// images' kernels), one per file while it is unchanged: QEMU copies the
// kernel into its own memory, so a copy per VM would only cost memory.
// The driver keeps each copy open; the QEMUs started with it keep theirs.
type sharedCopies struct {
	mu     sync.Mutex
	copies map[string]sharedCopy
}

type sharedCopy struct {
	size  int64
	mtime time.Time
	f     *os.File
}

func (c *sharedCopies) get(name, path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("the %s %s: %w", name, path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sc, ok := c.copies[path]; ok && sc.size == fi.Size() && sc.mtime.Equal(fi.ModTime()) {
		return sc.f, nil
	}
	f, err := sealedCopy(name, path, 0o444)
	if err != nil {
		return nil, err
	}
	if c.copies == nil {
		c.copies = map[string]sharedCopy{}
	}
	if old, ok := c.copies[path]; ok {
		old.f.Close()
	}
	c.copies[path] = sharedCopy{size: fi.Size(), mtime: fi.ModTime(), f: f}
	return f, nil
}

// tapFlags: a TAP without packet information, with virtio-net headers,
// as QEMU attaches one itself.
const tapFlags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR

// openTAP attaches a queue to the existing TAP device name. The daemon
// attaches it (root may attach any TAP), so the TAP needs no owner for
// the VM user.
func openTAP(name string) (*os.File, error) {
	// TUNSETIFF would create a missing device: refuse instead.
	if _, err := net.InterfaceByName(name); err != nil {
		return nil, fmt.Errorf("TAP %s: %w: take a TAP from the pool", name, err)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun for TAP %s: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TAP %s: %w", name, err)
	}
	ifr.SetUint16(tapFlags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("attaching TAP %s: %w: another process holds it (a VM still running?)", name, err)
		}
		return nil, fmt.Errorf("attaching TAP %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}
