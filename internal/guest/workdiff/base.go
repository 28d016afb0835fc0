package workdiff

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// baseRef is where a full_copy base is kept in banger's own git directory.
const baseRef = "refs/banger/base"

// baseDir is the git directory RecordBase keeps dir's base in.
func baseDir(stateDir, dir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return filepath.Join(stateDir, hex.EncodeToString(sum[:])[:16]+".git")
}

// ownConfig makes banger's own git directory store the working tree's
// bytes as they are: no end-of-line conversion.
func ownConfig(r *repo) {
	r.config["core.autocrlf"] = "false"
	r.config["core.safecrlf"] = "false"
	r.config["core.bare"] = "false"
}

// ownAttributes override every .gitattributes of the tree: no filter,
// conversion or ident expansion, whatever the tree asks for.
const ownAttributes = "* -text -filter -ident -working-tree-encoding\n"

// RecordBase records the tree at dir, just installed in full_copy mode, as
// the base Changes compares it with: every file (ignored ones too) in one
// commit at refs/banger/base of a git directory of banger's own under
// stateDir, never in dir. It replaces an earlier base for dir.
func RecordBase(ctx context.Context, dir, stateDir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	gitDir, err := os.MkdirTemp(stateDir, ".incoming-")
	if err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	defer os.RemoveAll(gitDir) // a no-op once renamed into place
	r, err := newRepo(gitDir, "")
	if err != nil {
		return err
	}
	defer r.close()
	ownConfig(r)
	if err := r.run(ctx, nil, nil, "init", "--bare", "--quiet", "--template="); err != nil {
		return fmt.Errorf("recording the base of %s: creating %s: %w", dir, gitDir, err)
	}
	if err := os.MkdirAll(filepath.Join(gitDir, "info"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(gitDir, "info", "attributes"), []byte(ownAttributes), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(gitDir, "banger-workspace"), []byte(dir+"\n"), 0o600); err != nil {
		return err
	}
	r.workTree = dir
	if err := r.addAll(ctx, true); err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	tree, err := r.line(ctx, "write-tree")
	if err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	commit, err := r.line(ctx, "commit-tree", "--no-gpg-sign", "-m", "banger: base of "+dir, tree)
	if err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	if err := r.run(ctx, nil, nil, "update-ref", baseRef, commit); err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	final := baseDir(stateDir, dir)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("recording the base of %s: removing the earlier base %s: %w", dir, final, err)
	}
	if err := os.Rename(gitDir, final); err != nil {
		return fmt.Errorf("recording the base of %s: %w", dir, err)
	}
	return nil
}

// ForgetBase removes the base recorded for dir, if any: a workspace
// installed in git mode has none.
func ForgetBase(dir, stateDir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(baseDir(stateDir, dir)); err != nil {
		return fmt.Errorf("forgetting the full_copy base of %s: %w", dir, err)
	}
	return nil
}
