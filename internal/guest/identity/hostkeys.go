package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// hostKeyTypes are the host keys a clone gets, by file name.
var hostKeyTypes = []struct {
	file string
	gen  func() (crypto.Signer, error)
}{
	{"ssh_host_ed25519_key", func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}},
	{"ssh_host_ecdsa_key", func() (crypto.Signer, error) {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}},
}

// rotateHostKeys writes new ed25519 and ECDSA P-256 host keys to
// /etc/ssh (drawn from the kernel RNG, reseeded by then), removes every
// other ssh_host_* file (an RSA key or a certificate from the image would
// otherwise be shared by every clone), and makes the running sshd load
// them.
func rotateHostKeys(sys System, hostname string) error {
	dir := sys.etc("ssh")
	comment := "root@" + hostname
	if hostname == "" {
		comment = "root@banger"
	}
	keep := map[string]bool{}
	for _, kt := range hostKeyTypes {
		key, err := kt.gen()
		if err != nil {
			return fmt.Errorf("generating %s: %w", kt.file, err)
		}
		priv, pub, err := marshalHostKey(key, comment)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", kt.file, err)
		}
		p := filepath.Join(dir, kt.file)
		if err := atomicfile.Replace(p, priv, 0o600, 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if err := atomicfile.Replace(p+".pub", pub, 0o644, 0o755); err != nil {
			return fmt.Errorf("writing %s.pub: %w", p, err)
		}
		keep[kt.file], keep[kt.file+".pub"] = true, true
	}
	old, err := filepath.Glob(filepath.Join(dir, "ssh_host_*"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if keep[filepath.Base(p)] {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the image's %s: %w", p, err)
		}
		sys.log().Info("old host key removed", "file", p)
	}
	return reloadSSHD(sys)
}

// marshalHostKey encodes key as ssh-keygen does: an OpenSSH private key
// file and a public key line with comment.
func marshalHostKey(key crypto.Signer, comment string) (priv, pub []byte, err error) {
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment + "\n"
	return pem.EncodeToMemory(block), []byte(line), nil
}

// SSHDPidFile is where sshd writes its process ID, below System.Root.
const SSHDPidFile = "run/sshd.pid"

// reloadSSHD sends SIGHUP to the sshd named by SSHDPidFile: sshd then
// re-executes itself and loads the new host keys. No pid file, or a pid
// that is gone, means no sshd is running (it reads the keys when it
// starts); a pid file naming a process that is not sshd is left alone.
func reloadSSHD(sys System) error {
	log := sys.log()
	p := filepath.Join(sys.Root, SSHDPidFile)
	b, err := readSmall(p, 32)
	if errors.Is(err, os.ErrNotExist) {
		log.Info("no sshd running: it will read the new host keys when it starts", "pid_file", p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s holds %q, not sshd's process ID: remove it or restart sshd", p, strings.TrimSpace(string(b)))
	}
	comm, err := os.ReadFile(filepath.Join(sys.ProcDir, strconv.Itoa(pid), "comm"))
	if errors.Is(err, os.ErrNotExist) {
		log.Info("sshd is not running: it will read the new host keys when it starts", "pid_file", p, "pid", pid)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the command name of process %d (%s): %w", pid, p, err)
	}
	if name := strings.TrimSpace(string(comm)); !strings.HasPrefix(name, "sshd") {
		log.Warn("the sshd pid file names another process: not signalling it", "pid_file", p, "pid", pid, "comm", name)
		return nil
	}
	if err := unix.Kill(pid, unix.SIGHUP); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("signalling sshd (pid %d) to reload its host keys: %w", pid, err)
	}
	log.Info("sshd reloading its host keys", "pid", pid)
	return nil
}

// PublicHostKeys returns the SSH host public keys in dir, sorted by file
// name (as the host_keys call does).
func PublicHostKeys(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "ssh_host_*_key.pub"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var keys []string
	for _, f := range files {
		b, err := readSmall(f, 64<<10)
		if err != nil {
			return nil, err
		}
		if k := strings.TrimSpace(string(b)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// readSmall reads at most limit bytes of a file that should be small.
func readSmall(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
