package identity

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Entropy is the kernel's RNG as the seed step uses it.
type Entropy interface {
	// AddEntropy mixes seed into the input pool and credits all of it.
	AddEntropy(seed []byte) error
	// Reseed makes the CRNG draw its next key from the pool now, so what
	// the guest reads from getrandom next depends on the seed.
	Reseed() error
}

func reseed(e Entropy, seed []byte) error {
	if e == nil {
		return fmt.Errorf("reseeding the kernel RNG: %w", errNoSystem)
	}
	if err := e.AddEntropy(seed); err != nil {
		return err
	}
	return e.Reseed()
}

// KernelEntropy is the kernel RNG through ioctls on Device
// ("/dev/urandom"): RNDADDENTROPY and RNDRESEEDCRNG, which need
// CAP_SYS_ADMIN.
type KernelEntropy struct {
	Device string
}

var _ Entropy = KernelEntropy{}

// AddEntropy issues RNDADDENTROPY with seed, crediting 8 bits per byte:
// the host drew it from its own CSPRNG.
func (k KernelEntropy) AddEntropy(seed []byte) error {
	return k.ioctl("RNDADDENTROPY", unix.RNDADDENTROPY, poolInfo(seed))
}

// Reseed issues RNDRESEEDCRNG (Linux 4.17 and later).
func (k KernelEntropy) Reseed() error {
	return k.ioctl("RNDRESEEDCRNG", unix.RNDRESEEDCRNG, nil)
}

func (k KernelEntropy) ioctl(name string, req uintptr, arg []byte) error {
	f, err := os.OpenFile(k.Device, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", k.Device, err)
	}
	defer f.Close()
	var p uintptr
	if len(arg) > 0 {
		p = uintptr(unsafe.Pointer(&arg[0]))
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, p); errno != 0 {
		return fmt.Errorf("%s on %s: %w", name, k.Device, errno)
	}
	return nil
}

// poolInfo lays out struct rand_pool_info for RNDADDENTROPY: the credit
// in bits, the buffer's length in bytes, then the bytes (native endian).
func poolInfo(seed []byte) []byte {
	b := make([]byte, 8+len(seed))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(seed)*8))
	binary.NativeEndian.PutUint32(b[4:], uint32(len(seed)))
	copy(b[8:], seed)
	return b
}
