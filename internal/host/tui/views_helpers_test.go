package tui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/google/go-cmp/cmp"
)

// fixedRoot is a daemon root whose path always has the same length, so a
// screen that shows a path under it differs between runs only in the
// characters viewGolden masks.
func fixedRoot(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	dir := filepath.Join(os.TempDir(), "bgtui-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// digestOnScreen is a shortened SHA-256 as the image detail shows it: the
// digests of the seeded ext4 images differ from run to run.
var digestOnScreen = regexp.MustCompile(`\b[0-9a-f]{16}…`)

// clockOnScreen is a wall-clock time a daemon reports (when the deep
// doctor probed).
var clockOnScreen = regexp.MustCompile(`\b\d{4}-\d\d-\d\d \d\d:\d\d UTC\b`)

// viewGolden compares the screen with testdata/name.golden like
// harness.golden, after replacing each old string with its new one
// (pairs) and masking digests.
func viewGolden(h *harness, name string, pairs ...string) {
	h.tb.Helper()
	got := digestOnScreen.ReplaceAllString(h.screen(), "################…")
	got = clockOnScreen.ReplaceAllString(got, "YYYY-MM-DD hh:mm UTC")
	if len(pairs) > 0 {
		got = strings.NewReplacer(pairs...).Replace(got)
	}
	goldenText(h.tb, name, got)
}

// goldenText compares got with testdata/name.golden (or writes it with
// -update).
func goldenText(tb testing.TB, name, got string) {
	tb.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with -update to write it); the screen:\n%s", err, got)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		tb.Errorf("screen %s differs from the golden (-want +got):\n%s", name, diff)
	}
}

// doctorHost is a host that answers every doctor question the same way
// on every machine: the tools are installed, /dev/kvm is missing,
// Firecracker and its jailer are not installed, reflinks are not
// supported, the daemon is not root.
type doctorHost struct{}

var errTestHost = errors.New("not on this test host")

func (doctorHost) LookPath(file string) (string, error) {
	switch filepath.Base(file) {
	case "firecracker", "jailer":
		return "", errTestHost
	}
	return "/usr/bin/" + filepath.Base(file), nil
}

func (doctorHost) Version(_ context.Context, bin string, _ ...string) (string, error) {
	return filepath.Base(bin) + " version 1.0", nil
}
func (doctorHost) ReadWrite(string) error { return nil }
func (doctorHost) Exists(string) bool     { return true }
func (doctorHost) KVMDevice() error {
	return errors.New("open /dev/kvm: no such file or directory (test host)")
}
func (doctorHost) ReflinkSupported(string) (bool, error)     { return false, nil }
func (doctorHost) SSHKey(string) (string, error)             { return "SHA256:testkey", nil }
func (doctorHost) IsRoot() bool                              { return false }
func (doctorHost) QEMUSandbox(context.Context, string) error { return nil }
func (doctorHost) FreeSpace(string) (uint64, uint64, error)  { return 100 << 30, 200 << 30, nil }
func (doctorHost) LookupUser(name string) (hypervisor.VMUser, error) {
	return hypervisor.VMUser{}, errTestHost
}
