package identity

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKernelEntropyErrors runs KernelEntropy's ioctls against a plain
// file, which refuses them, so the kernel's RNG of the test machine is
// never touched: each error names the request and the file.
func TestKernelEntropyErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-urandom")
	writeFile(t, file, "")
	k := KernelEntropy{Device: file}
	for name, call := range map[string]func() error{
		"RNDADDENTROPY": func() error { return k.AddEntropy(make([]byte, 32)) },
		"RNDRESEEDCRNG": k.Reseed,
	} {
		err := call()
		if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s on a plain file: %v, want ENOTTY naming the request and the file", name, err)
		}
	}
	missing := KernelEntropy{Device: filepath.Join(t.TempDir(), "absent")}
	if err := missing.Reseed(); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("Reseed without the device: %v, want an error naming it", err)
	}
}
