package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// packGit packs the work tree containing root in git mode: what
// `git ls-files --cached --others --exclude-standard` lists, as it is on disk,
// plus the git directory as .git.
func packGit(ctx context.Context, p *packer, root string) error {
	plan, err := planGit(ctx, root)
	if err != nil {
		return err
	}
	keep := func(rel string, isDir bool) bool {
		if rel == ".git" {
			return false // packed below, from the git directory itself
		}
		if isDir {
			return plan.ancestors[rel]
		}
		return plan.listed[rel]
	}
	if err := p.walkRoot(plan.loc.top, "", keep); err != nil {
		return err
	}
	return packGitDir(p, plan.loc)
}

// gitPlan is what git mode packs: the listed files and their directories.
type gitPlan struct {
	loc       repoLocation
	listed    map[string]bool
	ancestors map[string]bool
}

// planGit finds the work tree, refuses what git mode cannot copy, and
// lists the files to pack.
func planGit(ctx context.Context, root string) (gitPlan, error) {
	loc, err := locateRepo(ctx, root)
	if err != nil {
		return gitPlan{}, err
	}
	top := loc.top

	stage, err := runGit(ctx, top, "ls-files", "-z", "--stage")
	if err != nil {
		return gitPlan{}, err
	}
	if subs := gitlinks(stage); len(subs) > 0 {
		return gitPlan{}, submoduleError(top, subs)
	}
	if _, err := os.Lstat(filepath.Join(top, ".gitmodules")); err == nil {
		return gitPlan{}, submoduleError(top, declaredSubmodules(ctx, top))
	}

	out, err := runGit(ctx, top, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return gitPlan{}, err
	}
	plan := gitPlan{loc: loc, listed: map[string]bool{}, ancestors: map[string]bool{}}
	for _, name := range splitNUL(out) {
		if strings.HasSuffix(name, "/") {
			// ls-files shows an untracked directory that is a repository of its
			// own as "dir/"; git would not add its files, neither do we.
			return gitPlan{}, fmt.Errorf("%w: %q in %s is a nested git repository; use mode full_copy to copy it too, or add it to .gitignore to leave it out",
				ErrSubmodule, strings.TrimSuffix(name, "/"), top)
		}
		plan.listed[name] = true
		pathAncestors(plan.ancestors, name)
	}
	if err := checkGitDir(ctx, loc); err != nil {
		return gitPlan{}, err
	}
	return plan, nil
}

// repoLocation is where a work tree and its git directories are.
type repoLocation struct {
	top       string // top of the work tree
	gitDir    string // this work tree's git directory
	commonDir string // the shared git directory (== gitDir unless a linked worktree)
}

func locateRepo(ctx context.Context, root string) (repoLocation, error) {
	out, err := runGit(ctx, root, "rev-parse", "--is-inside-work-tree")
	if err != nil {
		var ge *gitError
		if errors.As(err, &ge) {
			switch {
			case strings.Contains(ge.stderr, "not a git repository"):
				return repoLocation{}, fmt.Errorf("%s is %w (no .git in it or above it): run `git init` there, or use mode full_copy to copy the directory as it is", root, ErrNotRepo)
			case strings.Contains(ge.stderr, "dubious ownership"):
				return repoLocation{}, fmt.Errorf("git refuses %s because another user owns it: run `git config --global --add safe.directory %s`, or use mode full_copy: %w", root, root, err)
			}
		}
		return repoLocation{}, err
	}
	if strings.TrimSpace(string(out)) != "true" {
		return repoLocation{}, fmt.Errorf("%s is inside a .git directory or a bare repository, %w: pass the checkout's directory, or use mode full_copy", root, ErrNotRepo)
	}
	out, err = runGit(ctx, root, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir")
	if err != nil {
		return repoLocation{}, err
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 {
		return repoLocation{}, fmt.Errorf("git rev-parse in %s: unexpected output %q", root, out)
	}
	loc := repoLocation{top: lines[0], gitDir: lines[1], commonDir: lines[2]}
	if !filepath.IsAbs(loc.commonDir) {
		loc.commonDir = filepath.Join(root, loc.commonDir) // relative to the directory git ran in
	}
	return loc, nil
}

// packGitDir packs the repository's git directory as .git.
func packGitDir(p *packer, loc repoLocation) error {
	if !sameFile(loc.gitDir, loc.commonDir) {
		// A linked worktree: ship a standalone repository made of the shared
		// directory with this worktree's HEAD, index and private refs on top.
		if err := p.dirHeader(".git", loc.commonDir); err != nil {
			return err
		}
		own := func(rel string, _ bool) bool {
			return rel != "commondir" && rel != "gitdir" && rel != "locked"
		}
		if err := p.walkRoot(loc.gitDir, ".git/", own); err != nil {
			return err
		}
		shared := func(rel string, _ bool) bool { return !perWorktree(rel) }
		return p.walkRoot(loc.commonDir, ".git/", shared)
	}
	if err := p.dirHeader(".git", loc.gitDir); err != nil {
		return err
	}
	return p.walkRoot(loc.gitDir, ".git/", nil)
}

// checkGitDir refuses git directories that would not work as a
// self-contained /root/repo/.git in the guest.
func checkGitDir(ctx context.Context, loc repoLocation) error {
	dotGit := filepath.Join(loc.top, ".git")
	if fi, err := os.Lstat(dotGit); sameFile(loc.gitDir, loc.commonDir) && (err != nil || !fi.IsDir() || !sameFile(dotGit, loc.gitDir)) {
		// .git is a "gitdir:" file (separate git dir, submodule checkout) or
		// core.worktree points here. The git directory is complete, but if it
		// names its work tree, that name is wrong in the guest.
		if wt, _ := runGit(ctx, loc.top, "config", "--get", "core.worktree"); len(bytes.TrimSpace(wt)) > 0 {
			return fmt.Errorf("the git directory of %s (%s) sets core.worktree, as a submodule checkout does, so it cannot serve as .git in the guest: clone it to a plain checkout, or use mode full_copy (the guest then gets the files without history)",
				loc.top, loc.gitDir)
		}
	}
	alternates := filepath.Join(loc.commonDir, "objects", "info", "alternates")
	if b, err := os.ReadFile(alternates); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return fmt.Errorf("%s borrows objects from another repository (%s), which the guest will not have: make it self-contained with `git -C %s repack -a -d` and then delete %s",
			loc.top, alternates, loc.top, alternates)
	}
	return nil
}

// perWorktree reports whether rel, relative to a shared git directory,
// belongs to the main worktree rather than to the repository: pseudorefs
// (HEAD, ORIG_HEAD, MERGE_MSG, ...), the index, in-progress operations and
// the per-worktree ref namespaces (see git-worktree(1), "Refs").
func perWorktree(rel string) bool {
	switch rel {
	case "worktrees", "index", "config.worktree", "sequencer", "rebase-merge", "rebase-apply",
		"logs/HEAD", "refs/bisect", "refs/worktree", "refs/rewritten",
		"logs/refs/bisect", "logs/refs/worktree", "logs/refs/rewritten":
		return true
	}
	if strings.Contains(rel, "/") {
		return false
	}
	for _, r := range rel {
		if (r < 'A' || r > 'Z') && r != '_' {
			return false
		}
	}
	return true
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// gitlinks returns the paths of submodule entries (mode 160000) in
// `git ls-files -z --stage` output.
func gitlinks(stage []byte) []string {
	var subs []string
	for _, rec := range splitNUL(stage) {
		meta, name, ok := strings.Cut(rec, "\t")
		if ok && strings.HasPrefix(meta, "160000 ") && !slices.Contains(subs, name) {
			subs = append(subs, name)
		}
	}
	return subs
}

// declaredSubmodules lists the submodule paths .gitmodules declares, or
// ".gitmodules" itself if it declares none git can read.
func declaredSubmodules(ctx context.Context, top string) []string {
	out, _ := runGit(ctx, top, "config", "-z", "-f", ".gitmodules", "--get-regexp", `^submodule\..*\.path$`)
	var paths []string
	for _, rec := range splitNUL(out) {
		if _, value, ok := strings.Cut(rec, "\n"); ok && value != "" {
			paths = append(paths, value)
		}
	}
	if len(paths) == 0 {
		return []string{".gitmodules"}
	}
	sort.Strings(paths)
	return paths
}

func submoduleError(top string, paths []string) error {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	return fmt.Errorf("%w: %s has submodule %s; use mode full_copy to copy submodules with the rest of the tree",
		ErrSubmodule, top, strings.Join(quoted, ", "))
}

func splitNUL(b []byte) []string {
	var out []string
	for _, rec := range bytes.Split(b, []byte{0}) {
		if len(rec) > 0 {
			out = append(out, string(rec))
		}
	}
	return out
}

// gitError is a failed git command with what it printed on stderr.
type gitError struct {
	args   []string
	dir    string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	msg := fmt.Sprintf("git %s in %s: %v", strings.Join(e.args, " "), e.dir, e.err)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *gitError) Unwrap() error { return e.err }

// repoEnv names the environment variables that point git at a repository
// other than the one -C selects; a caller running inside a git hook has them.
var repoEnv = map[string]bool{
	"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true, "GIT_COMMON_DIR": true,
	"GIT_OBJECT_DIRECTORY": true, "GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
	"GIT_NAMESPACE": true, "GIT_PREFIX": true,
}

// runGit runs git directly (no shell) in dir with a C locale and no pager,
// and returns its stdout.
func runGit(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--no-pager", "-C", dir}, args...)...)
	env := []string{"LC_ALL=C", "GIT_PAGER=cat", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if repoEnv[k] || k == "LC_ALL" || k == "GIT_PAGER" || k == "GIT_TERMINAL_PROMPT" || k == "GIT_OPTIONAL_LOCKS" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("git mode needs git on PATH: install git, or use mode full_copy: %w", err)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return stdout.Bytes(), &gitError{args: args, dir: dir, stderr: strings.TrimSpace(stderr.String()), err: err}
	}
	return stdout.Bytes(), nil
}
