package imagebuild

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/provision"
	"golang.org/x/crypto/ssh"
)

// writeTree writes files (as produced for ext4img) into a root directory.
// After a build, the tree is the build's work: each file's directory is
// resolved inside root (a link the build left, to /usr/bin say, leads to
// the image's /usr/bin, never the host's) and the file itself replaced,
// not written through.
func writeTree(root string, files []ext4img.File) error {
	tree := &provision.Chroot{Root: root}
	for _, f := range files {
		dir, err := tree.Path(path.Dir(f.Path))
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, path.Base(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		os.Remove(dst)
		if f.Mode&os.ModeSymlink != 0 {
			if err := os.Symlink(f.Target, dst); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(dst, f.Content, f.Mode.Perm()); err != nil {
			return err
		}
		if err := os.Chmod(dst, f.Mode.Perm()); err != nil {
			return err
		}
		if err := os.Lchown(dst, f.UID, f.GID); err != nil {
			return err
		}
	}
	return nil
}

// guestFiles are the files every bootstrapped image carries besides the
// agent: mounts (the work disk is /root), name resolution defaults, and an
// empty machine-id so each VM gets its own.
func guestFiles(hostname string) []ext4img.File {
	return []ext4img.File{
		{Path: "/etc/fstab", Mode: 0o644, Content: []byte(
			"# banger: the rootfs is the first disk, the VM's work disk (its /root) the second.\n" +
				"/dev/vda  /      ext4  defaults,errors=remount-ro  0 1\n" +
				"/dev/vdb  /root  ext4  defaults,nofail,x-systemd.device-timeout=300s,x-systemd.before=ssh.service  0 0\n")},
		{Path: "/etc/hostname", Mode: 0o644, Content: []byte(hostname + "\n")},
		{Path: "/etc/hosts", Mode: 0o644, Content: []byte("127.0.0.1 localhost\n127.0.1.1 " + hostname + "\n::1 localhost ip6-localhost ip6-loopback\n")},
		{Path: "/etc/machine-id", Mode: 0o444, Content: nil},
	}
}

// authorizeKey puts the public key in root's authorized_keys (0600 inside
// a 0700 .ssh), replacing what was there.
func authorizeKey(root, pubKey string) error {
	dir := filepath.Join(root, "root", ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	p := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(p, []byte(strings.TrimSpace(pubKey)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Chmod(p, 0o600)
}

// newHostKeys replaces the image's SSH host keys with fresh ones, so no two
// images (even from the same cached debootstrap) share host keys.
func newHostKeys(root string) error {
	dir := filepath.Join(root, "etc", "ssh")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*"))
	for _, f := range old {
		os.Remove(f)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		return err
	}
	for name, key := range map[string]any{"ed25519": edPriv, "ecdsa": ecPriv, "rsa": rsaPriv} {
		if err := writeHostKey(dir, name, key); err != nil {
			return fmt.Errorf("host key %s: %w", name, err)
		}
	}
	return nil
}

func writeHostKey(dir, name string, key any) error {
	// The OpenSSH private key format serves all three key types.
	block, err := ssh.MarshalPrivateKey(key, "root@banger")
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return err
	}
	priv := filepath.Join(dir, "ssh_host_"+name+"_key")
	if err := os.WriteFile(priv, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " root@banger\n"
	return os.WriteFile(priv+".pub", []byte(pub), 0o644)
}
