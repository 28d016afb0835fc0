package workdiff

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// Changes writes what changed in the workspace at dir since it was sent
// to w, in the format p asks for: a JSON agentproto.Changes, a patch
// (`git diff --binary`), or (full_copy mode) a tar stream of the added
// and modified files under one top-level directory "work". stateDir holds
// the bases RecordBase recorded.
func Changes(ctx context.Context, dir, stateDir string, p agentproto.ChangesParams, w io.Writer) error {
	mode, err := workspace.ParseMode(p.Mode)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadParams, err)
	}
	if err := checkChanges(mode, p); err != nil {
		return err
	}
	var s *snapshot
	if mode == workspace.ModeFullCopy {
		s, err = openFullCopy(ctx, dir, stateDir, p.VM)
	} else {
		s, err = openGit(ctx, dir, p.Base, p.VM)
	}
	if err != nil {
		return err
	}
	defer s.close()
	out, err := newAnswer(p.MaxBytes)
	if err != nil {
		return err
	}
	defer out.close()
	hint := ", or narrow the pathspec"
	switch p.Format {
	case agentproto.ChangesSummary:
		ch, err := s.summary(ctx, p.Pathspec)
		if err != nil {
			return err
		}
		if err := json.NewEncoder(out).Encode(ch); err != nil {
			return err
		}
		return out.send(w, "summary", hint)
	case agentproto.ChangesPatch:
		if err := s.patch(ctx, p.Pathspec, out); err != nil {
			return err
		}
		return out.send(w, "patch", hint)
	default:
		if err := s.files(ctx, p.Pathspec, out); err != nil {
			return err
		}
		return out.send(w, "tar of the changed files", hint)
	}
}

func checkChanges(mode workspace.Mode, p agentproto.ChangesParams) error {
	switch p.Format {
	case agentproto.ChangesSummary, agentproto.ChangesPatch:
	case agentproto.ChangesFiles:
		if mode != workspace.ModeFullCopy {
			return fmt.Errorf("%w: format %q is for full_copy workspaces: pull a git workspace as a bundle", ErrBadParams, p.Format)
		}
	default:
		return fmt.Errorf("%w: unknown format %q: want %q, %q or %q", ErrBadParams, p.Format, agentproto.ChangesSummary, agentproto.ChangesPatch, agentproto.ChangesFiles)
	}
	if p.Base != "" {
		if mode == workspace.ModeFullCopy {
			return fmt.Errorf("%w: a full_copy workspace is compared with the base the agent recorded: send no Base", ErrBadParams)
		}
		if err := checkID("Base", p.Base); err != nil {
			return err
		}
	}
	if err := checkPathspec(p.Pathspec); err != nil {
		return err
	}
	if err := checkVM(p.VM); err != nil {
		return err
	}
	return checkMax(p.MaxBytes)
}

// diffArgs are the options of every diff: renames found, no program or
// prefix the repository configures, paths from the top.
func diffArgs(format ...string) []string {
	return append([]string{"diff", "--no-ext-diff", "--no-textconv", "--no-color", "--no-relative", "-M"}, format...)
}

// pathspecArgs ends a command's options with "--" and the pathspec.
func pathspecArgs(args []string, pathspec []string) []string {
	return append(append(args, "--"), pathspec...)
}

func (s *snapshot) summary(ctx context.Context, pathspec []string) (agentproto.Changes, error) {
	ch := agentproto.Changes{Base: s.base, Work: s.work}
	if !s.fullCopy {
		ch.Head = s.head
		commits, err := s.commits(ctx)
		if err != nil {
			return ch, err
		}
		ch.Commits = commits
	}
	files, err := s.changedFiles(ctx, pathspec)
	if err != nil {
		return ch, err
	}
	if len(files) > agentproto.MaxChangedFiles {
		files, ch.Truncated = files[:agentproto.MaxChangedFiles], true
	}
	ch.Files = files
	return ch, nil
}

// commits are those reachable from HEAD but neither from the sent commit
// nor from its parents (the host's HEAD), newest first.
func (s *snapshot) commits(ctx context.Context) ([]agentproto.ChangedCommit, error) {
	if s.head == "" {
		return nil, nil
	}
	args := []string{"log", "-z", "--no-show-signature", "--no-mailmap", "--no-decorate",
		"--format=%H%x00%s%x00%an <%ae>%x00%at", "--max-count=" + strconv.Itoa(agentproto.MaxChangedCommits), s.head}
	if s.base != "" {
		args = append(args, "--not", s.base, s.base+"^@")
	}
	out, err := s.output(ctx, append(args, "--")...)
	if err != nil {
		return nil, fmt.Errorf("listing the commits made since the workspace was sent: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	fields := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(fields)%4 != 0 {
		return nil, fmt.Errorf("git log printed %d fields, not 4 per commit", len(fields))
	}
	var commits []agentproto.ChangedCommit
	for i := 0; i < len(fields); i += 4 {
		sec, err := strconv.ParseInt(fields[i+3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("git log printed the time %q: %w", fields[i+3], err)
		}
		commits = append(commits, agentproto.ChangedCommit{ID: fields[i], Subject: fields[i+1], Author: fields[i+2], Time: time.Unix(sec, 0).UTC()})
	}
	return commits, nil
}

// statuses maps git's status letters to agentproto's names.
var statuses = map[byte]string{
	'A': "added", 'M': "modified", 'D': "deleted", 'R': "renamed", 'T': "type_changed",
}

// changedFiles lists what differs from the base to the tip, sorted by
// path.
func (s *snapshot) changedFiles(ctx context.Context, pathspec []string) ([]agentproto.ChangedFile, error) {
	from, to := s.from(), s.to()
	names, err := s.output(ctx, pathspecArgs(diffArgs("-z", "--name-status", from, to), pathspec)...)
	if err != nil {
		return nil, fmt.Errorf("listing the changed files: %w", err)
	}
	nums, err := s.output(ctx, pathspecArgs(diffArgs("-z", "--numstat", from, to), pathspec)...)
	if err != nil {
		return nil, fmt.Errorf("counting the changed lines: %w", err)
	}
	files, err := parseNameStatus(names)
	if err != nil {
		return nil, err
	}
	if err := addNumstat(files, nums); err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// parseNameStatus reads `git diff -z --name-status`: a status, then one
// path (two for a rename or copy), each NUL-terminated.
func parseNameStatus(b []byte) ([]agentproto.ChangedFile, error) {
	fields := strings.Split(string(b), "\x00")
	var files []agentproto.ChangedFile
	for i := 0; i < len(fields) && fields[i] != ""; {
		st := fields[i]
		name, ok := statuses[st[0]]
		if !ok {
			return nil, fmt.Errorf("git diff printed the status %q, which vm diff does not know", st)
		}
		n := 1
		if st[0] == 'R' {
			n = 2
		}
		if i+n >= len(fields) {
			return nil, fmt.Errorf("git diff --name-status ended after the status %q", st)
		}
		f := agentproto.ChangedFile{Status: name, Path: fields[i+n]}
		if n == 2 {
			f.OldPath = fields[i+1]
		}
		files = append(files, f)
		i += n + 1
	}
	return files, nil
}

// addNumstat adds `git diff -z --numstat`'s counts to files, which
// lists the same changes in the same order.
func addNumstat(files []agentproto.ChangedFile, b []byte) error {
	rest := string(b)
	for i := range files {
		added, rest1, ok1 := strings.Cut(rest, "\t")
		deleted, rest2, ok2 := strings.Cut(rest1, "\t")
		if !ok1 || !ok2 {
			return fmt.Errorf("git diff --numstat printed fewer entries than --name-status")
		}
		rest = rest2
		var p string
		if strings.HasPrefix(rest, "\x00") { // a rename: old and new path follow
			parts := strings.SplitN(rest[1:], "\x00", 3)
			if len(parts) < 3 {
				return fmt.Errorf("git diff --numstat ended in a rename")
			}
			p, rest = parts[1], parts[2]
		} else {
			var ok bool
			if p, rest, ok = strings.Cut(rest, "\x00"); !ok {
				return fmt.Errorf("git diff --numstat ended in a path")
			}
		}
		if p != files[i].Path {
			return fmt.Errorf("git diff --numstat listed %q where --name-status listed %q", p, files[i].Path)
		}
		if added == "-" && deleted == "-" {
			files[i].Binary = true
			continue
		}
		a, err1 := strconv.Atoi(added)
		d, err2 := strconv.Atoi(deleted)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("git diff --numstat printed the counts %q and %q for %q", added, deleted, p)
		}
		files[i].Added, files[i].Deleted = a, d
	}
	return nil
}

// patch writes `git diff --binary` from the base to the tip.
func (s *snapshot) patch(ctx context.Context, pathspec []string, w io.Writer) error {
	args := diffArgs("--binary", "--src-prefix=a/", "--dst-prefix=b/", "--submodule=short", "-O/dev/null", s.from(), s.to())
	if err := s.run(ctx, nil, w, pathspecArgs(args, pathspec)...); err != nil {
		return fmt.Errorf("making the patch: %w", err)
	}
	return nil
}

// files writes a tar stream whose one top-level directory "work" holds
// every added, modified, renamed or type-changed file as the tip has it:
// modes 0644 or 0755, symlinks as symlinks (never followed: their target
// is the blob git stores). Gitlinks (nested repositories) are left out.
func (s *snapshot) files(ctx context.Context, pathspec []string, w io.Writer) error {
	changed, err := s.changedFiles(ctx, pathspec)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range changed {
		if f.Status != "deleted" {
			want[f.Path] = true
		}
	}
	type entry struct {
		path, oid string
		mode      string
	}
	var entries []entry
	if len(want) > 0 {
		out, err := s.output(ctx, "ls-tree", "-r", "-z", "--full-tree", s.to())
		if err != nil {
			return fmt.Errorf("listing the work's files: %w", err)
		}
		for _, rec := range strings.Split(string(out), "\x00") {
			meta, p, ok := strings.Cut(rec, "\t")
			f := strings.Fields(meta)
			if !ok || len(f) != 3 || !want[p] {
				continue
			}
			if f[1] == "blob" {
				entries = append(entries, entry{path: p, oid: f[2], mode: f[0]})
			}
		}
	}
	now := time.Now().Truncate(time.Second)
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	var mkdirs func(d string) error
	mkdirs = func(d string) error {
		if d == "." || dirs[d] {
			return nil
		}
		if err := mkdirs(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "work/" + d + "/", Mode: 0o755, ModTime: now})
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "work/", Mode: 0o755, ModTime: now}); err != nil {
		return err
	}
	if len(entries) > 0 {
		var req bytes.Buffer
		for _, e := range entries {
			req.WriteString(e.oid + "\n")
		}
		cmd := s.command(ctx, "cat-file", "--batch")
		cmd.Stdin = &req
		var stderr bytes.Buffer
		cmd.Stderr = &limitedBuffer{b: &stderr, left: 4096}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return s.wait(ctx, err, cmd.Args[2:], &stderr)
		}
		br := bufio.NewReaderSize(stdout, 64<<10)
		for _, e := range entries {
			if err = writeBlob(tw, br, e.path, e.oid, e.mode, now, mkdirs); err != nil {
				break
			}
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		if err := s.wait(ctx, cmd.Wait(), cmd.Args[2:], &stderr); err != nil {
			return fmt.Errorf("reading the changed files: %w", err)
		}
	}
	return tw.Close()
}

// writeBlob copies one blob from `git cat-file --batch` into the tar.
func writeBlob(tw *tar.Writer, br *bufio.Reader, p, oid, mode string, now time.Time, mkdirs func(string) error) error {
	hdrLine, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading %s from git cat-file: %w", p, err)
	}
	f := strings.Fields(hdrLine)
	if len(f) != 3 || f[0] != oid || f[1] != "blob" {
		return fmt.Errorf("git cat-file answered %q for %s (%s)", strings.TrimSpace(hdrLine), p, oid)
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("git cat-file gave the size %q for %s", f[2], p)
	}
	if err := mkdirs(path.Dir(p)); err != nil {
		return err
	}
	name := "work/" + p
	switch mode {
	case "120000":
		if size == 0 || size > 4095 {
			return fmt.Errorf("symlink %s has a %d-byte target, which cannot be a link", p, size)
		}
		target := make([]byte, size)
		if _, err := io.ReadFull(br, target); err != nil {
			return fmt.Errorf("reading the target of symlink %s: %w", p, err)
		}
		if bytes.IndexByte(target, 0) >= 0 {
			return fmt.Errorf("symlink %s has a target holding a NUL", p)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: string(target), Mode: 0o777, ModTime: now}); err != nil {
			return err
		}
	default:
		perm := int64(0o644)
		if mode == "100755" {
			perm = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: perm, ModTime: now}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, br, size); err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
	}
	if b, err := br.ReadByte(); err != nil || b != '\n' {
		return fmt.Errorf("git cat-file did not end %s with a newline", p)
	}
	return nil
}
