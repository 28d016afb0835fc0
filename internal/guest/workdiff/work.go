package workdiff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/internal/shared/workspace"
)

// StateDir is where the agent keeps the bases of full_copy workspaces
// (RecordBase): one git directory per workspace, outside it.
const StateDir = "/var/lib/banger/workspaces"

// Errors the agent maps to the codes the host sees; returned errors wrap
// them.
var (
	// ErrBadParams: the request's params are malformed (bad_request).
	ErrBadParams = errors.New("bad workspace params")
	// ErrNoBase: there is nothing to compare with: the workspace is not a
	// git repository (git mode), the sent commit is not in it, or no base
	// was recorded (full_copy mode). Preparing the workspace again fixes
	// it (failed_precondition).
	ErrNoBase = errors.New("no base to compare the workspace with")
	// ErrNoWork: a bundle was asked of a repository without commits or
	// changes (failed_precondition).
	ErrNoWork = errors.New("nothing to pull")
	// ErrNoGit: git is not installed in the guest.
	ErrNoGit = errors.New("git is not installed in the guest")
)

// snapshot is a workspace opened for one answer: the commit compared
// with, HEAD and W, the commit of the uncommitted state.
type snapshot struct {
	*repo
	fullCopy bool
	base     string // the sent commit (git mode; "" none) or the recorded base
	head     string // HEAD ("" unborn); the recorded base in full_copy mode
	work     string // W; "" when nothing is uncommitted
	empty    string // the empty tree's id
}

// tip is the newest state: W, else HEAD ("" when neither exists).
func (s *snapshot) tip() string {
	if s.work != "" {
		return s.work
	}
	return s.head
}

// from and to are what a diff compares: the base and the tip, the empty
// tree standing in for either when it does not exist.
func (s *snapshot) from() string { return or(s.base, s.empty) }
func (s *snapshot) to() string   { return or(s.tip(), s.empty) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// openGit opens the git repository at dir, checks base (when set) is a
// commit in it, and makes W.
func openGit(ctx context.Context, dir, base, vm string) (*snapshot, error) {
	gitDir := filepath.Join(dir, ".git")
	if _, err := os.Lstat(gitDir); err != nil {
		return nil, fmt.Errorf("%w: %s is not a git repository (%v): send it in git mode with `banger vm workspace prepare`", ErrNoBase, dir, err)
	}
	r, err := newRepo(gitDir, dir)
	if err != nil {
		return nil, err
	}
	s := &snapshot{repo: r, base: base}
	if err := s.open(ctx, "HEAD", vm); err != nil {
		r.close()
		return nil, err
	}
	if base != "" {
		got, err := s.commit(ctx, base)
		if err != nil {
			r.close()
			return nil, err
		}
		if got != base {
			r.close()
			return nil, fmt.Errorf("%w: the commit the host sent, %s, is not in the repository at %s (was it replaced, or its history rewritten?): send it again with `banger vm workspace prepare`", ErrNoBase, base, dir)
		}
	}
	return s, nil
}

// openFullCopy opens the base RecordBase kept for dir and makes W.
func openFullCopy(ctx context.Context, dir, stateDir, vm string) (*snapshot, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	gitDir := baseDir(stateDir, dir)
	if _, err := os.Stat(gitDir); err != nil {
		return nil, fmt.Errorf("%w: no base was recorded for %s (%v): it was not installed in full_copy mode by this agent; send it again with `banger vm workspace prepare`", ErrNoBase, dir, err)
	}
	r, err := newRepo(gitDir, dir)
	if err != nil {
		return nil, err
	}
	ownConfig(r)
	s := &snapshot{repo: r, fullCopy: true}
	if err := s.open(ctx, baseRef, vm); err != nil {
		r.close()
		return nil, err
	}
	if s.head == "" {
		r.close()
		return nil, fmt.Errorf("%w: the base recorded for %s in %s has no %s: send the workspace again with `banger vm workspace prepare`", ErrNoBase, dir, gitDir, baseRef)
	}
	s.base = s.head
	return s, nil
}

// open resolves head (HEAD, or the full_copy base), quarantines new
// objects and makes W.
func (s *snapshot) open(ctx context.Context, headRef, vm string) error {
	if !s.fullCopy {
		if err := s.disarmFilters(ctx); err != nil {
			return err
		}
	}
	head, err := s.commit(ctx, headRef)
	if err != nil {
		return err
	}
	s.head = head
	if s.empty, err = s.line(ctx, "hash-object", "-t", "tree", "--stdin"); err != nil {
		return fmt.Errorf("hashing the empty tree: %w", err)
	}
	if err := s.quarantine(ctx, head); err != nil {
		return err
	}
	return s.makeWork(ctx, vm)
}

// commit resolves rev to a commit id, "" when it names none.
func (s *snapshot) commit(ctx context.Context, rev string) (string, error) {
	id, err := s.line(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if exitCode(err) == 1 {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", rev, err)
	}
	return id, nil
}

// makeWork commits the working tree as it is (W) on top of head in the
// scratch index and object directory, when it differs from head's tree.
// In git mode .gitignore is honoured; in full_copy mode every file counts.
func (s *snapshot) makeWork(ctx context.Context, vm string) error {
	if err := s.addAll(ctx, s.fullCopy); err != nil {
		return err
	}
	tree, err := s.line(ctx, "write-tree")
	if err != nil {
		return fmt.Errorf("writing the working tree's tree: %w", err)
	}
	headTree := s.empty
	if s.head != "" {
		if headTree, err = s.line(ctx, "rev-parse", "--verify", s.head+"^{tree}"); err != nil {
			return fmt.Errorf("reading HEAD's tree: %w", err)
		}
	}
	if tree == headTree {
		return nil
	}
	msg := "banger: uncommitted changes"
	if vm != "" {
		msg += " in VM " + vm
	}
	args := []string{"commit-tree", "--no-gpg-sign", "-m", msg}
	if s.head != "" {
		args = append(args, "-p", s.head)
	}
	if s.work, err = s.line(ctx, append(args, tree)...); err != nil {
		return fmt.Errorf("committing the uncommitted changes: %w", err)
	}
	return nil
}

// addAll adds the whole working tree to the index (ignored files too
// with force). A path git cannot add (a nested repository without a
// commit, an unreadable file) keeps what the index held for it, rather
// than failing the whole answer.
func (r *repo) addAll(ctx context.Context, force bool) error {
	args := []string{"add", "--all", "--ignore-errors"}
	if force {
		args = append(args, "--force")
	}
	if err := r.run(ctx, nil, nil, args...); err != nil && exitCode(err) != 1 {
		return fmt.Errorf("adding %s's working tree to a scratch index: %w", r.workTree, err)
	}
	return nil
}

// checkVM refuses a VM name that could not stand in a commit message.
func checkVM(vm string) error {
	if len(vm) > 128 || strings.ContainsFunc(vm, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: VM name %q is longer than 128 bytes or holds control characters", ErrBadParams, vm)
	}
	return nil
}

// checkID refuses anything but a full commit id (SHA-1 or SHA-256).
func checkID(what, id string) error {
	if (len(id) == 40 || len(id) == 64) && strings.Trim(id, "0123456789abcdef") == "" {
		return nil
	}
	return fmt.Errorf("%w: %s %q is not a full commit id (40 or 64 lowercase hex digits)", ErrBadParams, what, id)
}

// checkPathspec refuses empty pathspecs and ones holding a NUL.
func checkPathspec(pathspec []string) error {
	if len(pathspec) > 256 {
		return fmt.Errorf("%w: %d pathspecs are more than 256", ErrBadParams, len(pathspec))
	}
	for _, p := range pathspec {
		if p == "" || len(p) > 4096 || strings.ContainsRune(p, 0) {
			return fmt.Errorf("%w: pathspec %q is empty, longer than 4096 bytes or holds a NUL", ErrBadParams, p)
		}
	}
	return nil
}

func checkMax(max int64) error {
	if max < 0 {
		return fmt.Errorf("%w: MaxBytes %d is below zero", ErrBadParams, max)
	}
	return nil
}

// tooLarge says an answer exceeds the host's limit.
func tooLarge(what string, size, limit int64, hint string) error {
	return fmt.Errorf("%w: the %s is %d bytes, more than the %d-byte limit: raise pull.max_size in banger's config on the host%s", workspace.ErrTooLarge, what, size, limit, hint)
}
