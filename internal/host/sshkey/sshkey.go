// Package sshkey owns the SSH key banger bakes into images and uses to reach
// guests: a configured key used as is, or an auto-managed ed25519 key.
//
// A configured key (ssh_key in the config) is only ever read. A managed key is
// generated on first use, written atomically so a crash never leaves half a
// key, and its .pub file is repaired from the private key when it goes
// missing or stale.
package sshkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// managedComment is the comment on a managed key, in both its private and
// public files.
const managedComment = "banger"

// Key describes a usable, unencrypted SSH private key and its public half.
type Key struct {
	// Path is the private key file. The public key is at Path + ".pub".
	Path string
	// PublicKey is the public key as one authorized_keys line, without a
	// trailing newline.
	PublicKey string
	// Fingerprint is the SHA256 fingerprint, "SHA256:" followed by base64.
	Fingerprint string
	// Managed is true when banger generated and looks after the key.
	Managed bool
}

// Ensure returns the key at path.
//
// With managed set, a missing key is generated (ed25519, private key 0600,
// public key 0644, parent directory 0700) and a missing or stale .pub is
// rewritten from the private key. Without it, nothing is created or modified:
// the key must exist, be unencrypted and, like OpenSSH demands, be private to
// its owner. Every error names what to do about it.
func Ensure(path string, managed bool) (Key, error) {
	if !managed {
		return load(path, false)
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return generate(path)
	} else if err != nil {
		return Key{}, fmt.Errorf("checking managed SSH key %s: %w", path, err)
	}
	return load(path, true)
}

// Inspect reads the key at path and its .pub file without changing anything,
// for diagnostics such as banger doctor. It cannot tell a managed key from a
// configured one, so Managed is always false. A missing key gives an error
// wrapping fs.ErrNotExist.
func Inspect(path string) (Key, error) {
	return load(path, false)
}

// load reads an existing key. With managed set it rewrites a missing or stale
// .pub; otherwise it never writes.
func load(path string, managed bool) (Key, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if managed {
			return Key{}, fmt.Errorf("managed SSH key %s: %w: it disappeared while banger was reading it; run the command again", path, fs.ErrNotExist)
		}
		return Key{}, fmt.Errorf("SSH key %s: %w: create it with \"ssh-keygen -t ed25519 -N '' -f %s\", or remove ssh_key from the config to let banger manage a key", path, fs.ErrNotExist, path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("checking SSH key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("SSH key %s is not a regular file: %s", path, fixBadKey(path, managed))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("SSH key %s is accessible by other users (mode %04o) and ssh will refuse it: run \"chmod 600 %s\"", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("reading SSH key %s: make it readable by the user running banger: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if pm := (*ssh.PassphraseMissingError)(nil); errors.As(err, &pm) {
		if managed {
			return Key{}, fmt.Errorf("managed SSH key %s is protected by a passphrase, which banger never sets: delete %s and %s.pub so banger generates a new key", path, path, path)
		}
		return Key{}, fmt.Errorf("SSH key %s is protected by a passphrase: banger needs an unencrypted key; point ssh_key at one, or remove ssh_key from the config to use banger's managed key", path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("SSH key %s is not a private key banger can read (%v): %s", path, err, fixBadKey(path, managed))
	}
	pub := signer.PublicKey()
	key := Key{
		Path:        path,
		PublicKey:   authorizedLine(pub, ""),
		Fingerprint: ssh.FingerprintSHA256(pub),
		Managed:     managed,
	}

	pubPath := path + ".pub"
	line, err := readPublic(pubPath, pub)
	switch {
	case err == nil:
		key.PublicKey = line
		return key, nil
	case errors.Is(err, fs.ErrNotExist) && !managed:
		// A configured key without .pub: the private key says it all.
		return key, nil
	case !managed:
		return Key{}, fmt.Errorf("%w: regenerate it with \"ssh-keygen -y -f %s > %s\"", err, path, pubPath)
	}
	key.PublicKey = authorizedLine(pub, managedComment)
	if err := writeAtomic(pubPath, []byte(key.PublicKey+"\n"), 0o644); err != nil {
		return Key{}, fmt.Errorf("rewriting public key %s from %s: %w", pubPath, path, err)
	}
	return key, nil
}

func fixBadKey(path string, managed bool) string {
	if managed {
		return fmt.Sprintf("delete %s and %s.pub so banger generates a new key", path, path)
	}
	return "point ssh_key at an OpenSSH private key, or remove ssh_key from the config to use banger's managed key"
}

// readPublic returns the authorized_keys line in pubPath if it holds want.
func readPublic(pubPath string, want ssh.PublicKey) (string, error) {
	data, err := os.ReadFile(pubPath)
	if err != nil {
		return "", fmt.Errorf("reading public key %s: %w", pubPath, err)
	}
	got, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return "", fmt.Errorf("public key %s is not an authorized_keys line (%v)", pubPath, err)
	}
	if !bytes.Equal(got.Marshal(), want.Marshal()) {
		return "", fmt.Errorf("public key %s does not match its private key", pubPath)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	return strings.TrimSpace(line), nil
}

func authorizedLine(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	if comment != "" {
		line += " " + comment
	}
	return line
}

// generate creates a managed ed25519 key at path. The .pub file is written
// first and the private key published last, without replacing one that
// appeared meanwhile: a private key on disk always means a complete key.
func generate(path string) (Key, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("creating directory %s for the managed SSH key: %w", dir, err)
	}
	pubRaw, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generating managed SSH key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, managedComment)
	if err != nil {
		return Key{}, fmt.Errorf("encoding managed SSH key: %w", err)
	}
	pub, err := ssh.NewPublicKey(pubRaw)
	if err != nil {
		return Key{}, fmt.Errorf("encoding managed SSH public key: %w", err)
	}
	key := Key{
		Path:        path,
		PublicKey:   authorizedLine(pub, managedComment),
		Fingerprint: ssh.FingerprintSHA256(pub),
		Managed:     true,
	}

	pubTmp, err := writeTemp(dir, filepath.Base(path)+".pub", []byte(key.PublicKey+"\n"), 0o644)
	if err != nil {
		return Key{}, fmt.Errorf("writing managed SSH public key: %w", err)
	}
	defer os.Remove(pubTmp) // no-op once renamed
	privTmp, err := writeTemp(dir, filepath.Base(path), pem.EncodeToMemory(block), 0o600)
	if err != nil {
		return Key{}, fmt.Errorf("writing managed SSH key: %w", err)
	}
	defer os.Remove(privTmp)

	// Link refuses to replace a key another banger process just generated.
	if err := os.Link(privTmp, path); errors.Is(err, fs.ErrExist) {
		return load(path, true)
	} else if err != nil {
		// Filesystems without hard links: fall back to a plain rename.
		if err := os.Rename(privTmp, path); err != nil {
			return Key{}, fmt.Errorf("installing managed SSH key %s: %w", path, err)
		}
	}
	if err := os.Rename(pubTmp, path+".pub"); err != nil {
		return Key{}, fmt.Errorf("installing managed SSH public key %s.pub: %w", path, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return Key{}, err
	}
	return key, nil
}

// writeAtomic replaces path with data through a temporary file and a
// rename, and syncs the directory so the rename survives a crash.
func writeAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := atomicfile.Write(path, data, perm, 0); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// writeTemp writes data to a new, synced temporary file in dir and returns
// its name. Temporary names start with "." so they never pass for a key.
func writeTemp(dir, base string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}
