package hvtest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/internal/shared/bootpayload"
	"github.com/bangerdev/banger/internal/shared/initramfs"
)

// Where a boot payload sits in the initramfs (internal/shared/bootpayload); the
// guest's init stages it for banger-agent.
var (
	bootKeyDir     = strings.TrimPrefix(bootpayload.ArchiveDir, "/")
	bootKeyEntry   = path.Join(bootKeyDir, bootpayload.KeyFile)
	bootPayloadDoc = path.Join(bootKeyDir, bootpayload.PayloadFile)
)

// newAgentKey returns a fresh agent key.
func newAgentKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// WithBootKey writes to dst the initramfs at base (may be empty) followed
// by a second archive holding a boot payload with key and nothing else:
// what the daemon hands a guest, less its agent and the credentials.
func WithBootKey(dst, base string, key []byte) error {
	b, err := os.ReadFile(base)
	if err != nil {
		return fmt.Errorf("reading the initramfs: %w", err)
	}
	var out bytes.Buffer
	out.Write(b)
	out.Write(make([]byte, (4-len(b)%4)%4)) // newc archives start 4-aligned
	a := initramfs.NewWriter(&out)
	if err := a.AddDirAll(bootKeyDir, 0o700); err != nil {
		return err
	}
	if err := a.AddFile(bootKeyEntry, 0o600, key); err != nil {
		return err
	}
	if err := a.AddFile(bootPayloadDoc, 0o600, []byte("{}")); err != nil {
		return err
	}
	if err := a.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, out.Bytes(), 0o600)
}

// BootKey returns the agent key the initramfs at path carries (the last
// one of its concatenated archives, as the kernel's unpacking leaves it),
// or nil when it carries none: a stand-in guest finds its key where a
// real one does.
func BootKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, err
	}
	// A newc entry: a 110-byte header ("070701", then 13 fields of 8 hex
	// digits: filesize at 54, namesize at 94), the NUL-terminated name,
	// padding to 4 bytes, the data.
	name := []byte(bootKeyEntry + "\x00")
	i := bytes.LastIndex(b, name)
	if i < 110 || !bytes.HasPrefix(b[i-110:], []byte("0707")) {
		return nil, nil
	}
	hdr := b[i-110 : i]
	size, err1 := strconv.ParseUint(string(hdr[54:62]), 16, 32)
	nameSize, err2 := strconv.ParseUint(string(hdr[94:102]), 16, 32)
	if err1 != nil || err2 != nil || int(nameSize) != len(name) {
		return nil, fmt.Errorf("%s: a malformed entry for %s", path, bootKeyEntry)
	}
	start := i + len(name)
	start += (4 - (start-(i-110))%4) % 4
	if start+int(size) > len(b) {
		return nil, fmt.Errorf("%s: %s is cut short", path, bootKeyEntry)
	}
	return bytes.Clone(b[start : start+int(size)]), nil
}
