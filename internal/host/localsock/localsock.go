// Package localsock owns banger's boundary with the other users of the
// host: the owner-only API socket (mode 0600 inside a 0700 directory) whose
// connections carry their peer's credentials, so the server refuses every
// user but its owner and the client refuses a server that is neither its
// user nor root; and the private directories and files beside it (runtime
// and state directories, pid file, locks, logs), which are checked to belong
// to the user alone and are never written through a symbolic link another
// user could have planted. See private.go and lock.go.
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

// Listen creates the socket at path for the current user. Its directory
// must pass EnsurePrivateDir (created 0700, or an existing one of this
// user's alone); a leftover socket file is replaced only after checking
// nothing answers on it. The caller must hold the daemon's socket lock
// (config.Paths.SocketLock), so a live daemon is never displaced.
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
	return fmt.Sprintf("the banger socket %s belongs to uid %d, but you are uid %d: if that daemon is yours under that uid (root's, for sudo), run banger as uid %d; otherwise point BANGER_HOME/XDG_RUNTIME_DIR at a directory of your own (a socket of another user's in your runtime directory may be a trap: nothing was sent to it)",
		e.Path, e.OwnerUID, e.UID, e.OwnerUID)
}

// UntrustedServerError reports a socket served by a process that is
// neither the user's nor root's: not the user's bangerd, and possibly a
// socket another user planted to receive the user's requests.
type UntrustedServerError struct {
	Path      string
	ServerUID int
	ServerPID int
	UID       int
}

func (e *UntrustedServerError) Error() string {
	pid := ""
	if e.ServerPID > 0 {
		pid = fmt.Sprintf(" (pid %d)", e.ServerPID)
	}
	who := fmt.Sprintf("neither you (uid %d) nor root", e.UID)
	if e.UID == 0 {
		who = "not root (you)"
	}
	return fmt.Sprintf("refusing the banger socket %s: the process serving it%s runs as uid %d, %s, so it is not your bangerd and may be another user's trap; nothing was sent to it. Remove the socket (rm %s) if you do not know who made it, and check that XDG_RUNTIME_DIR (or BANGER_HOME) is a directory of your own",
		e.Path, pid, e.ServerUID, who, e.Path)
}

// TrustedServer is the client's rule for the uid serving the daemon
// socket: the user's own, or root. Root is allowed because it already
// reads every file the client could send and can attach to the client
// itself, so refusing it would protect nothing; whether a root bangerd
// serves a non-root user is the daemon's decision (it does not: it serves
// its own uid only).
func TrustedServer(serverUID, uid int) bool { return serverUID == uid || serverUID == 0 }

// Dial connects to the daemon socket and checks, from the kernel's
// SO_PEERCRED of the connection, that the process serving it is the
// user's or root's (see TrustedServer) before anything is sent. It returns
// ErrNotRunning (wrapped) when the socket is missing or nothing answers,
// *ForeignOwnerError when the socket file belongs to another user, and
// *UntrustedServerError when another user's process serves it, so the
// caller can say exactly what to do.
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
	cred, err := PeerCred(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("checking who serves %s: %w", path, err)
	}
	if !TrustedServer(cred.UID, os.Getuid()) {
		c.Close()
		return nil, &UntrustedServerError{Path: path, ServerUID: cred.UID, ServerPID: cred.PID, UID: os.Getuid()}
	}
	return c, nil
}
