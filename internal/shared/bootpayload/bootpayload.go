// Package bootpayload owns what the host hands a guest at each boot, and
// the only way it travels: an initramfs archive appended to the image's.
//
// The payload is the VM's agent key (the per-boot secret that authenticates
// the host on the agent channel), the credential files the user syncs into
// every VM (auth_files), and the SSH public keys to authorize for root. It
// travels host → guest only. The host never reads anything back from a
// guest's disks to build it: the guest's filesystems are the guest's, and
// bangerd does not parse them (SPEC §8).
//
// # Shape of a boot
//
// For each boot the daemon writes a per-VM initramfs (WriteInitrd): the
// image's own archive, unchanged, followed by a second newc archive that
// holds
//
//	/init                     the daemon's banger-agent (replaces the image's)
//	/banger/boot/key          the agent key, 32 bytes
//	/banger/boot/payload.json Files and AuthorizedKeys
//
// The kernel unpacks concatenated archives in order and a later file
// replaces an earlier one, so the VM always boots the daemon's init,
// whatever banger built the image. That init (internal/guest/guestinit) installs
// itself as the rootfs's agent, mounts a tmpfs on the new root's /run and
// copies /banger/boot there (StageDir, 0700, files 0600) before it frees
// the initramfs. The agent reads the key from StageDir when it starts, and
// applies Files and AuthorizedKeys under /root once per boot (Apply).
//
// Nothing of the payload reaches a disk in the guest except the files the
// user asked for; the key lives in guest RAM only and is replaced at every
// boot. On the host, the per-VM archive and key stay in the VM's 0700
// directory.
package bootpayload

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/initramfs"
)

const (
	// KeySize is the length of an agent key.
	KeySize = 32
	// ArchiveDir is where the payload sits in the initramfs.
	ArchiveDir = "/banger/boot"
	// StageDir is where the init puts it in the booted system (on a
	// tmpfs /run).
	StageDir = "/run/banger/boot"
	// KeyFile and PayloadFile are the payload's two files, in ArchiveDir
	// and in StageDir.
	KeyFile     = "key"
	PayloadFile = "payload.json"

	// MaxPayload bounds payload.json: credential files are small.
	MaxPayload = 16 << 20
	// maxAuthorizedKeys bounds the authorized_keys file the agent reads
	// and rewrites (the guest may have made it anything).
	maxAuthorizedKeys = 1 << 20
	// GuestHome is the only tree Files may write into.
	GuestHome = "/root"
)

// Payload is what one boot hands the guest.
type Payload struct {
	// Key authenticates the host on the agent channel.
	Key []byte `json:"-"`
	// Files are written under GuestHome with their Mode (0600 for
	// credentials); parent directories are created 0700.
	Files []File `json:"files,omitempty"`
	// AuthorizedKeys are authorized_keys lines added to root's
	// authorized_keys unless a line with the same key is there.
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
}

// File is one file for the guest's home.
type File struct {
	Path string `json:"path"` // absolute, below GuestHome
	Mode uint32 `json:"mode"` // permission bits
	Data []byte `json:"data"`
}

// NewKey returns a fresh random agent key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating an agent key: %w", err)
	}
	return k, nil
}

// Validate checks what Apply relies on: a key of the right size, paths
// that stay below GuestHome, permission bits only, one-line keys.
func (p Payload) Validate() error {
	if len(p.Key) != KeySize {
		return fmt.Errorf("bootpayload: agent key is %d bytes, want %d", len(p.Key), KeySize)
	}
	for _, f := range p.Files {
		if _, err := homeRel(f.Path); err != nil {
			return err
		}
		if f.Mode&^0o777 != 0 {
			return fmt.Errorf("bootpayload: %s: mode %#o has more than permission bits", f.Path, f.Mode)
		}
	}
	for _, k := range p.AuthorizedKeys {
		if strings.ContainsAny(k, "\r\n\x00") || strings.TrimSpace(k) == "" {
			return fmt.Errorf("bootpayload: an authorized key must be one non-empty line")
		}
	}
	return nil
}

// homeRel returns p relative to GuestHome, refusing anything outside it.
func homeRel(p string) (string, error) {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return "", fmt.Errorf("bootpayload: guest path %q must be absolute and clean", p)
	}
	rel, ok := strings.CutPrefix(p, GuestHome+"/")
	if !ok || rel == "" {
		return "", fmt.Errorf("bootpayload: guest path %q is not below %s", p, GuestHome)
	}
	return rel, nil
}

// WriteInitrd writes the VM's initramfs to dst: the image's archive at
// base, then an archive with agentBin as /init (none when agentBin is "":
// base's /init is that agent already) and the payload. dst is replaced
// atomically (another process sees the old file or the new, never a part)
// and is readable by its owner only. It is not synced: it serves one boot,
// and a host that crashes has ended that boot; the next start writes a
// new one.
func WriteInitrd(dst, base, agentBin string, p Payload) error {
	if err := p.Validate(); err != nil {
		return err
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if len(doc) > MaxPayload {
		return fmt.Errorf("bootpayload: the payload is %d bytes, more than %d: are the auth_files credentials?", len(doc), MaxPayload)
	}
	src, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("opening the image's initramfs: %w", err)
	}
	defer src.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, src)
	if err != nil {
		return fmt.Errorf("copying the image's initramfs: %w", err)
	}
	// The kernel skips zero bytes between archives; align the second
	// archive's header to 4 bytes as newc wants.
	if pad := (4 - n%4) % 4; pad > 0 {
		if _, err := tmp.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if err := writeOverlay(tmp, agentBin, p.Key, doc); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// writeOverlay writes the second archive.
func writeOverlay(w io.Writer, agentBin string, key, doc []byte) error {
	a := initramfs.NewWriter(w)
	dir := strings.TrimPrefix(ArchiveDir, "/")
	steps := []func() error{
		func() error { return a.AddDirAll(dir, 0o700) },
		func() error { return a.AddFile(path.Join(dir, KeyFile), 0o600, key) },
		func() error { return a.AddFile(path.Join(dir, PayloadFile), 0o600, doc) },
		func() error {
			if agentBin == "" {
				return nil
			}
			return a.AddFileFrom("init", 0o755, agentBin)
		},
		a.Close,
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("writing the boot payload archive: %w", err)
		}
	}
	return nil
}

// Load reads a staged payload from dir (StageDir in a guest), bounded.
func Load(dir string) (Payload, error) {
	var p Payload
	key, err := readBounded(filepath.Join(dir, KeyFile), KeySize+1)
	if err != nil {
		return p, err
	}
	doc, err := readBounded(filepath.Join(dir, PayloadFile), MaxPayload+1)
	if err != nil {
		return p, err
	}
	if len(doc) > MaxPayload {
		return p, fmt.Errorf("bootpayload: %s is over %d bytes", PayloadFile, MaxPayload)
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return p, fmt.Errorf("bootpayload: %s: %w", PayloadFile, err)
	}
	p.Key = key
	return p, p.Validate()
}

// LoadKey reads only the agent key from dir.
func LoadKey(dir string) ([]byte, error) {
	key, err := readBounded(filepath.Join(dir, KeyFile), KeySize+1)
	if err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("bootpayload: %s is %d bytes, want %d", filepath.Join(dir, KeyFile), len(key), KeySize)
	}
	return key, nil
}

func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// Apply writes the payload's files and authorized keys below home (the
// guest's /root, or a test directory standing for it). Files are replaced
// atomically; a directory in the way is an error for that file only.
func Apply(p Payload, home string) error {
	var errs []error
	for _, f := range p.Files {
		rel, err := homeRel(f.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := atomicfile.Write(filepath.Join(home, rel), f.Data, os.FileMode(f.Mode), 0o700); err != nil {
			errs = append(errs, fmt.Errorf("writing %s: %w", f.Path, err))
		}
	}
	if len(p.AuthorizedKeys) > 0 {
		if err := authorize(filepath.Join(home, ".ssh", "authorized_keys"), p.AuthorizedKeys); err != nil {
			errs = append(errs, fmt.Errorf("authorizing SSH keys: %w", err))
		}
	}
	return errors.Join(errs...)
}

// authorize adds each key whose type and blob are not in the file yet.
func authorize(file string, keys []string) error {
	current, err := readBounded(file, maxAuthorizedKeys+1)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(current) > maxAuthorizedKeys {
		return fmt.Errorf("%s is over %d bytes: not adding banger's key to it (remove or trim it)", file, maxAuthorizedKeys)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(current), "\n") {
		if id := keyID(line); id != "" {
			have[id] = true
		}
	}
	out := bytes.NewBuffer(current)
	if out.Len() > 0 && !bytes.HasSuffix(current, []byte("\n")) {
		out.WriteByte('\n')
	}
	added := false
	for _, k := range keys {
		if id := keyID(k); id != "" && !have[id] {
			out.WriteString(strings.TrimSpace(k) + "\n")
			have[id] = true
			added = true
		}
	}
	if !added {
		return nil
	}
	return atomicfile.Write(file, out.Bytes(), 0o600, 0o700)
}

// keyID is "type blob" of an authorized_keys line without options, or "".
func keyID(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 || strings.HasPrefix(f[0], "#") {
		return ""
	}
	return f[0] + " " + f[1]
}

// ReadInitrd reads back what WriteInitrd appended to a base archive of
// baseSize bytes: the payload and the /init program. It is for tests and
// diagnostics (the host never reads anything from a guest).
func ReadInitrd(name string, baseSize int64) (Payload, []byte, error) {
	var p Payload
	f, err := os.Open(name)
	if err != nil {
		return p, nil, err
	}
	defer f.Close()
	if _, err := f.Seek(baseSize+(4-baseSize%4)%4, io.SeekStart); err != nil {
		return p, nil, err
	}
	r := initramfs.NewReader(f)
	var doc, init []byte
	dir := strings.TrimPrefix(ArchiveDir, "/")
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, nil, fmt.Errorf("reading the payload archive: %w", err)
		}
		var dst *[]byte
		switch h.Name {
		case "init":
			dst = &init
		case path.Join(dir, KeyFile):
			dst = &p.Key
		case path.Join(dir, PayloadFile):
			dst = &doc
		default:
			continue
		}
		if *dst, err = io.ReadAll(r); err != nil {
			return p, nil, err
		}
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return p, nil, fmt.Errorf("payload: %w", err)
	}
	return p, init, nil
}
