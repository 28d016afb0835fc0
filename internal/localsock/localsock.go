// Package localsock owns banger's local API socket: an owner-only Unix
// socket (mode 0600 inside a 0700 directory) whose connections carry their
// peer's credentials, so the server can refuse every user but its owner.
package localsock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cred is the kernel-reported identity of a connection's peer.
type Cred struct {
	PID int
	UID int
	GID int
}

// PeerCred returns the credentials of the process on the other end of c.
func PeerCred(c net.Conn) (Cred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Cred{}, fmt.Errorf("peer credentials: %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, err
	}
	if serr != nil {
		return Cred{}, fmt.Errorf("reading SO_PEERCRED: %w", serr)
	}
	return Cred{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

// Listen creates the socket at path for the current user. The directory is
// created 0700 (an existing one must belong to this user); a leftover socket
// file is replaced only after checking nothing answers on it. The caller must
// hold the daemon's instance lock, so a live daemon is never displaced.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := EnsurePrivateDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: move it aside", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another bangerd is answering on %s: stop it with `banger daemon stop`", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	}
	// Create the socket with a restrictive umask so there is no window in
	// which it exists with wider permissions, then make the mode explicit.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// EnsurePrivateDir creates dir with mode 0700 and checks that it belongs to
// the current user and is not writable by others.
func EnsurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to uid %d, not to you (uid %d): use your own runtime directory (XDG_RUNTIME_DIR or BANGER_HOME)",
			dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by other users (mode %v): run `chmod 700 %s`", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// ErrNotRunning means nothing listens on the socket: the daemon is not
// running.
var ErrNotRunning = errors.New("daemon not running")

// ForeignOwnerError reports a socket that belongs to another user.
type ForeignOwnerError struct {
	Path     string
	OwnerUID int
	UID      int
}

func (e *ForeignOwnerError) Error() string {
	return fmt.Sprintf("the banger socket %s belongs to uid %d, but you are uid %d: run banger as uid %d, or point BANGER_HOME/XDG_RUNTIME_DIR at a directory of your own",
		e.Path, e.OwnerUID, e.UID, e.OwnerUID)
}

// Dial connects to the daemon socket. It returns ErrNotRunning (wrapped)
// when the socket is missing or nothing answers, and *ForeignOwnerError
// when the socket belongs to another user, so the caller can say exactly
// what to do.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRunning)
	}
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("cannot reach %s: %w: the runtime directory belongs to another user; use your own (BANGER_HOME or XDG_RUNTIME_DIR)", path, err)
		}
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, &ForeignOwnerError{Path: path, OwnerUID: int(st.Uid), UID: os.Getuid()}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, ErrNotRunning)
		}
		return nil, err
	}
	return c, nil
}
