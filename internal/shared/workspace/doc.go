// Package workspace turns a host checkout into a tar stream (git or
// full_copy mode) and extracts such a stream into a guest directory safely
// and atomically; for `banger vm cp` it does the same for one file or
// directory tree, in either direction.
//
// It owns the content of `banger vm workspace prepare`: [Pack] runs on the
// host and decides which files make up the workspace; [Extract] runs in the
// guest and installs the stream as /root/repo. It also owns the content of
// `banger vm cp`: [PackPath] on the sending side, [Place] on the receiving
// side, host or guest. The transport between the two (the agent protocol)
// is not this package's business: both ends are plain io.Writer /
// io.Reader.
//
// # Pack
//
// In git mode the workspace is what `git ls-files --cached --others
// --exclude-standard` lists, read from the working tree (so uncommitted edits
// travel, deleted tracked files do not, ignored files do not), plus the .git
// directory so the guest has history. A root inside a work tree packs the
// whole work tree from its top: the .git directory only makes sense next to
// the tree it describes. A linked worktree (`git worktree add`) is packed as a
// standalone repository: the shared git directory overlaid with the
// worktree's own HEAD, index and per-worktree refs; a .git file pointing at
// a separate git directory is followed. Refused, each with an error naming
// the fix: submodules (gitlinks, a .gitmodules file) and untracked nested
// repositories (full_copy mode copies them), a git directory that borrows
// objects through alternates, and one that sets core.worktree (a submodule
// checkout).
//
// In full_copy mode the workspace is every file under root.
//
// Both modes walk the tree through directory file descriptors with
// O_NOFOLLOW, so a symlink is stored as a symlink and never followed: nothing
// outside root is ever read, even if the tree changes under the walk.
// Sockets, fifos and device nodes are skipped; hard-linked files are stored
// as independent regular files. Headers carry the permission bits
// (setuid/setgid/sticky are dropped), the mtime in whole seconds, and
// uid/gid 0.
//
// # Extract
//
// [Extract] builds the new tree in a private (mode 0700) sibling directory
// dest+".incoming-*" and swaps it into place with renameat2(RENAME_EXCHANGE),
// so dest is never missing; on filesystems without exchange it falls back to
// renaming the old tree aside to dest+".old-*". Any failure before the swap
// removes the staging directory and leaves dest untouched. The stream must
// end with tar's end-of-archive marker (archive/tar itself accepts a stream
// cut at an entry boundary; Extract refuses it), and the new tree is synced
// with one syncfs before it is published. dest itself gets mode 0755.
//
// Every path is resolved by walking from the staging directory's file
// descriptor one component at a time with openat(O_NOFOLLOW|O_DIRECTORY), and
// every file is created with O_CREAT|O_EXCL|O_NOFOLLOW. This was chosen over
// openat2(RESOLVE_BENEATH): the walk must create missing parents component
// by component anyway, it works on every guest kernel (openat2 needs 5.6 and
// may be blocked by seccomp filters), and because the staging directory is
// fresh, mode 0700 and written only by this goroutine, no unprivileged
// process can race a symlink into it; the stream itself is the only
// adversary, and the walk refuses any path that runs through a symlink the
// stream created. Even so, no step ever follows a symlink, so a racing root
// process could make an entry fail but not redirect a write.
//
// Entries are refused (and nothing is installed) when their name is
// absolute, unclean or contains "..", when they would pass through a
// symlink, when they duplicate an earlier entry, when they are device nodes
// or fifos, or when they are hard links to anything but a regular file
// already extracted. Symlink targets are stored verbatim: a link may point
// anywhere, extraction just never writes through one.
//
// # Copy
//
// [PackPath] packs one path as a stream with a single top-level entry named
// after it: a regular file, a symlink (src itself is never followed), or a
// directory and everything under it, walked and stored exactly as full_copy
// mode does. A path with no name of its own ("/", ".", "..") is refused.
//
// [Place] installs such a stream like `docker cp`: into target/<name> when
// target is an existing directory (or a symlink to one), otherwise as target
// itself, whose parent must exist; a target written with a trailing slash
// must be an existing directory. Every entry must be that one name or under
// it, and all of Extract's rules apply. The entry is built in a private
// staging directory (parent/.banger-cp-*) next to its final path and renamed
// into place: a file or symlink replaces a file or symlink already there
// (a symlink there is replaced, never written through); a directory there,
// or a directory entry meeting anything already there, is refused with an
// error asking to remove it or pick another path, since Place never merges
// or deletes a tree. Until that rename nothing outside the staging directory
// changes; on failure the staging directory is removed.
//
// When the stream comes from a guest (`vm cp VM:/x DEST` on the host), the
// guest is untrusted and [ExtractOptions] close what a hostile stream could
// otherwise choose: Name makes the final name the one the user asked for
// (an entry of any other name is refused); Umask masks every mode as the
// user's own files are; MaxBytes bounds what is written, counting sparse
// entries at their full size and every entry at least a block; NoReplace
// refuses an existing path (the CLI's --force lifts it for a file or
// symlink); ConfineSymlinks refuses links that could point outside the
// copy. Device nodes, fifos and hard links to anything but a file of the
// same stream are refused always.
package workspace

import (
	"errors"
	"fmt"
)

// Mode says which files of a checkout make up the workspace.
type Mode string

const (
	// ModeGit packs the files git tracks or would track, plus .git.
	ModeGit Mode = "git"
	// ModeFullCopy packs the whole tree, ignored files and submodules included.
	ModeFullCopy Mode = "full_copy"
)

// ParseMode turns a mode's name (the CLI's --mode) into a Mode; the empty string is git.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeGit:
		return ModeGit, nil
	case ModeFullCopy:
		return ModeFullCopy, nil
	}
	return "", fmt.Errorf("unknown workspace mode %q: use %q (tracked and untracked files, .gitignore honoured) or %q (the whole tree)", s, ModeGit, ModeFullCopy)
}

// Stats counts what a Pack wrote or an Extract installed. Files counts
// regular files (hard links included), Bytes their content.
type Stats struct {
	Files, Dirs, Symlinks int
	Bytes                 int64
}

// Errors callers can map to stable codes; the returned errors wrap them.
var (
	// ErrNotRepo: git mode was asked for a directory that is not in a git
	// work tree.
	ErrNotRepo = errors.New("not a git work tree")
	// ErrSubmodule: git mode found a submodule or a nested repository.
	ErrSubmodule = errors.New("a git checkout with submodules is not copied from git's file list")
	// ErrUnsafeEntry: the stream holds an entry that could escape dest or is
	// otherwise not allowed in a workspace.
	ErrUnsafeEntry = errors.New("unsafe tar entry")
	// ErrTooLarge: the stream's content exceeds ExtractOptions.MaxBytes,
	// or the room on the destination's filesystem (ErrNoSpace).
	ErrTooLarge = errors.New("workspace too large")
	// ErrNoSpace: the destination's filesystem filled before the stream
	// was all written. It wraps ErrTooLarge.
	ErrNoSpace = fmt.Errorf("%w for the free space", ErrTooLarge)
	// ErrOutsideLink: ExtractOptions.ConfineSymlinks refused a symlink
	// that could point outside the copy. It wraps ErrUnsafeEntry.
	ErrOutsideLink = fmt.Errorf("symlink pointing outside the copy: %w", ErrUnsafeEntry)
	// ErrWouldReplace: Place found something at the final path and
	// ExtractOptions.NoReplace forbids replacing it.
	ErrWouldReplace = errors.New("the destination exists")
)
