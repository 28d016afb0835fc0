package workimport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// diffFlags make a diff the same whatever the user's diff configuration:
// no colour, no external diff or textconv driver, standard prefixes,
// renames found, submodules as ids.
var diffFlags = []string{"--no-color", "--no-ext-diff", "--no-textconv", "-M", "--submodule=short", "--src-prefix=a/", "--dst-prefix=b/"}

// checkBase refuses a base that is not a full object id naming a commit
// the staging repository reaches (the host's, through its alternates).
func (w *Work) checkBase(ctx context.Context, base string) error {
	if !isHexID(base) {
		return fmt.Errorf("the workspace's sent commit %q is not a full object id: prepare the workspace again", base)
	}
	if _, err := git(ctx, w.staging, "cat-file", "-e", base+"^{commit}"); err != nil {
		return fmt.Errorf("the host repository %s lacks the commit %s the workspace was sent as: pull into the repository the workspace came from: %w", w.top, base, err)
	}
	return nil
}

// Commits returns the commits of the work that base does not reach, newest
// first, at most agentproto.MaxChangedCommits.
func (w *Work) Commits(ctx context.Context, base string) ([]api.WorkspaceCommit, error) {
	if err := w.checkBase(ctx, base); err != nil {
		return nil, err
	}
	out, err := git(ctx, w.staging, "rev-list", "--no-commit-header",
		"--max-count="+strconv.Itoa(agentproto.MaxChangedCommits),
		"--format=%H%x00%ct%x00%an <%ae>%x00%s%x00", w.Tip, "--not", base)
	if err != nil {
		return nil, err
	}
	var commits []api.WorkspaceCommit
	for _, rec := range bytes.Split(out, []byte("\x00\n")) {
		if len(bytes.TrimSpace(rec)) == 0 {
			continue
		}
		f := strings.SplitN(string(rec), "\x00", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("listing the VM's commits: unexpected git output %q", rec)
		}
		secs, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("listing the VM's commits: commit %s has time %q: %w", f[0], f[1], err)
		}
		commits = append(commits, api.WorkspaceCommit{ID: f[0], Time: time.Unix(secs, 0).UTC(), Author: f[2], Subject: f[3]})
	}
	return commits, nil
}

// Files returns the paths the work changes since base, limited by
// pathspec, sorted by path (as git sorts them).
func (w *Work) Files(ctx context.Context, base string, pathspec []string) ([]api.WorkspaceFile, error) {
	if err := w.checkBase(ctx, base); err != nil {
		return nil, err
	}
	diff := func(mode string) ([]string, error) {
		args := append([]string{"diff", "-z", mode}, diffFlags...)
		args = append(append(args, base, w.Tip, "--"), pathspec...)
		out, err := git(ctx, w.staging, args...)
		if err != nil {
			return nil, err
		}
		return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"), nil
	}
	names, err := diff("--name-status")
	if err != nil {
		return nil, err
	}
	nums, err := diff("--numstat")
	if err != nil {
		return nil, err
	}
	files, err := parseNameStatus(names)
	if err != nil {
		return nil, err
	}
	counts, err := parseNumstat(nums)
	if err != nil {
		return nil, err
	}
	for i := range files {
		if c, ok := counts[files[i].Path]; ok {
			files[i].Added, files[i].Deleted, files[i].Binary = c.Added, c.Deleted, c.Binary
		}
	}
	return files, nil
}

// parseNameStatus parses `git diff -z --name-status` fields.
func parseNameStatus(f []string) ([]api.WorkspaceFile, error) {
	var files []api.WorkspaceFile
	for i := 0; i < len(f) && f[i] != ""; {
		code := f[i]
		var file api.WorkspaceFile
		switch code[0] {
		case 'A':
			file.Status = api.FileAdded
		case 'M':
			file.Status = api.FileModified
		case 'D':
			file.Status = api.FileDeleted
		case 'T':
			file.Status = api.FileTypeChanged
		case 'R':
			file.Status = api.FileRenamed
		default:
			return nil, fmt.Errorf("listing the VM's changed files: unexpected status %q", code)
		}
		if file.Status == api.FileRenamed {
			if i+2 >= len(f) {
				return nil, fmt.Errorf("listing the VM's changed files: rename without paths")
			}
			file.OldPath, file.Path = f[i+1], f[i+2]
			i += 3
		} else {
			if i+1 >= len(f) {
				return nil, fmt.Errorf("listing the VM's changed files: status without a path")
			}
			file.Path = f[i+1]
			i += 2
		}
		files = append(files, file)
	}
	return files, nil
}

// parseNumstat parses `git diff -z --numstat` fields into counts by (new)
// path.
func parseNumstat(f []string) (map[string]api.WorkspaceFile, error) {
	counts := map[string]api.WorkspaceFile{}
	for i := 0; i < len(f) && f[i] != ""; {
		parts := strings.SplitN(f[i], "\t", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("listing the VM's changed files: unexpected numstat %q", f[i])
		}
		var c api.WorkspaceFile
		if parts[0] == "-" && parts[1] == "-" {
			c.Binary = true
		} else {
			a, err1 := strconv.Atoi(parts[0])
			d, err2 := strconv.Atoi(parts[1])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("listing the VM's changed files: unexpected numstat %q", f[i])
			}
			c.Added, c.Deleted = a, d
		}
		path := parts[2]
		i++
		if path == "" { // a rename: old and new path follow
			if i+1 >= len(f) {
				return nil, fmt.Errorf("listing the VM's changed files: rename without paths")
			}
			path = f[i+1]
			i += 2
		}
		counts[path] = c
	}
	return counts, nil
}

// Patch writes to out the work's changes since base, limited by pathspec,
// as `git diff --binary` (which `git apply` takes).
func (w *Work) Patch(ctx context.Context, base string, pathspec []string, out io.Writer) error {
	if err := w.checkBase(ctx, base); err != nil {
		return err
	}
	_, err := gitRun{dir: w.staging, args: w.patchArgs(base, pathspec), stdout: out}.run(ctx)
	return err
}

func (w *Work) patchArgs(base string, pathspec []string) []string {
	args := append([]string{"diff", "--binary"}, diffFlags...)
	return append(append(args, base, w.Tip, "--"), pathspec...)
}
