package workimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/api"
)

// Sent is what a git-mode workspace sends, recorded in the host repository.
type Sent struct {
	// Top is the top of the work tree.
	Top string
	// Head is the HEAD commit, "" when HEAD is unborn.
	Head string
	// Commit holds what is sent: Head with the uncommitted changes and
	// the untracked, not ignored files on top, or Head itself when there
	// are none. The repository keeps it at api.SentRefPrefix + the VM.
	Commit string
}

// sentIdent is the author and committer of the commit RecordSent makes,
// so users without user.name configured can send a workspace too.
var sentIdent = []string{
	"GIT_AUTHOR_NAME=banger", "GIT_AUTHOR_EMAIL=banger@localhost",
	"GIT_COMMITTER_NAME=banger", "GIT_COMMITTER_EMAIL=banger@localhost",
}

// RecordSent records what a git-mode workspace of checkout sends to vm:
// the work tree's files as `git ls-files --cached --others
// --exclude-standard` lists them (deleted tracked files left out), as a
// commit on top of HEAD kept at api.SentRefPrefix+vm. It builds that
// commit in a temporary index, so the user's index, work tree, HEAD and
// current branch stay as they are; it adds objects and the one ref.
func RecordSent(ctx context.Context, checkout, vm string) (Sent, error) {
	ref := api.SentRefPrefix + vm
	if vm == "" {
		return Sent{}, errors.New("recording a workspace: the VM name is empty")
	}
	if _, err := git(ctx, checkout, "check-ref-format", ref); err != nil {
		return Sent{}, fmt.Errorf("recording a workspace: VM name %q cannot name the git ref %s: %w", vm, ref, err)
	}
	top, err := git(ctx, checkout, "rev-parse", "--show-toplevel")
	if err != nil {
		return Sent{}, fmt.Errorf("recording a workspace: %s is not a git work tree: %w", checkout, err)
	}
	s := Sent{Top: oneLine(top)}
	s.Head, err = resolveCommit(ctx, s.Top, "HEAD")
	if err != nil {
		return Sent{}, err
	}
	indexPath, err := git(ctx, s.Top, "rev-parse", "--path-format=absolute", "--git-path", "index")
	if err != nil {
		return Sent{}, err
	}

	tmp, err := os.MkdirTemp("", "banger-sent-")
	if err != nil {
		return Sent{}, fmt.Errorf("recording a workspace: %w", err)
	}
	defer os.RemoveAll(tmp)
	index := filepath.Join(tmp, "index")
	useIndex := []string{"GIT_INDEX_FILE=" + index}
	// Start from a copy of the user's index (its stat data spares hashing
	// unchanged files, and sparse-checkout entries keep their flags), or
	// from HEAD's tree when there is none.
	switch copied, err := copyFile(oneLine(indexPath), index); {
	case err != nil:
		return Sent{}, fmt.Errorf("recording a workspace: copying the index: %w", err)
	case !copied && s.Head != "":
		if _, err := (gitRun{dir: s.Top, args: []string{"read-tree", "HEAD"}, env: useIndex}).run(ctx); err != nil {
			return Sent{}, err
		}
	}
	if _, err := (gitRun{dir: s.Top, args: []string{"add", "-A", "--", "."}, env: useIndex}).run(ctx); err != nil {
		return Sent{}, fmt.Errorf("recording what the workspace sends: %w", err)
	}
	tree, err := gitRun{dir: s.Top, args: []string{"write-tree"}, env: useIndex}.run(ctx)
	if err != nil {
		return Sent{}, err
	}

	s.Commit = s.Head
	if s.Head == "" || !sameTree(ctx, s.Top, s.Head, oneLine(tree)) {
		args := []string{"commit-tree", "--no-gpg-sign", "-m", "banger: workspace sent to VM " + vm}
		if s.Head != "" {
			args = append(args, "-p", s.Head)
		}
		out, err := gitRun{dir: s.Top, args: append(args, oneLine(tree)), env: sentIdent}.run(ctx)
		if err != nil {
			return Sent{}, err
		}
		s.Commit = oneLine(out)
	}
	if _, err := git(ctx, s.Top, "update-ref", "-m", "banger: workspace sent to VM "+vm, ref, s.Commit); err != nil {
		return Sent{}, err
	}
	return s, nil
}

// resolveCommit returns the commit rev names in dir, or "" when it names
// none (an unborn HEAD).
func resolveCommit(ctx context.Context, dir, rev string) (string, error) {
	out, err := git(ctx, dir, "rev-parse", "--verify", "-q", rev+"^{commit}")
	if err != nil {
		if stderrOf(err) == "" && len(out) == 0 {
			return "", nil
		}
		return "", err
	}
	return oneLine(out), nil
}

func sameTree(ctx context.Context, dir, commit, tree string) bool {
	out, err := git(ctx, dir, "rev-parse", "--verify", "-q", commit+"^{tree}")
	return err == nil && oneLine(out) == tree
}

// copyFile copies src to dst and reports whether src existed.
func copyFile(src, dst string) (bool, error) {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return false, err
	}
	return true, out.Close()
}
