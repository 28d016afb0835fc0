// Package workimport records what a git-mode workspace sends, and brings
// a VM's work (a git bundle from an untrusted guest) home as a branch,
// verified, without touching the host's working tree, index or HEAD.
//
// It runs in the CLI as the user, never as root and never in the daemon,
// and drives the host's own git directly (no shell). On the way home:
//
//   - the bundle is read into a private temporary directory, at most
//     pull.max_size bytes, and its header is checked by this package
//     before git reads it (v2, or v3 naming only the host's object
//     format; only the refs BundleRefHead and BundleRefWork;
//     prerequisites named by full ids);
//   - git verifies it (prerequisites present) in a private bare staging
//     repository that borrows the host repository's objects
//     (objects/info/alternates), and git index-pack --strict takes its
//     objects in, fsck-checked (tree entries named .git, ".GIT" or "..",
//     or holding a slash; malformed objects) with every link present, and
//     hooks off;
//   - the work is compared and patched in the staging repository, so no
//     .gitattributes of either side is read and no diff or textconv
//     driver runs;
//   - only then does a fetch from the staging repository create one
//     branch in the host repository: refused when the branch exists
//     (unless forced) or is checked out.
//
// A bundle carries objects and refs only: the guest's configuration,
// hooks, info/ and attributes never reach the host.
package workimport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Errors a caller may tell apart with errors.Is.
var (
	// ErrTooLarge: the bundle is larger than pull.max_size.
	ErrTooLarge = errors.New("the VM's work is too large")
	// ErrBadBundle: the bundle is not one banger's agent sends.
	ErrBadBundle = errors.New("the VM sent a bundle banger does not accept")
	// ErrMissingBase: the host repository lacks a commit the work builds on.
	ErrMissingBase = errors.New("the host repository lacks a commit the VM's work builds on")
	// ErrBranchExists: the branch to create exists already.
	ErrBranchExists = errors.New("branch exists")
	// ErrDirty: the checkout has uncommitted changes.
	ErrDirty = errors.New("the checkout has uncommitted changes")
)

// maxHeader bounds a bundle's header: its signature, prerequisites and
// refs. The agent's header names at most two prerequisites and two refs.
const maxHeader = 64 << 10

// stagingConfig is the configuration of the git commands that take in and
// read the guest's objects: no hooks, no automatic housekeeping, and the
// transfer checks on should a command consult them.
var stagingConfig = []string{
	"-c", "core.hooksPath=/dev/null",
	"-c", "transfer.fsckObjects=true",
	"-c", "gc.auto=0",
	"-c", "maintenance.auto=false",
}

// staged returns args after stagingConfig.
func staged(args ...string) []string {
	return append(slices.Clone(stagingConfig), args...)
}

// Work is a VM's work, verified in a private staging
// repository. Close removes it.
type Work struct {
	// Head is the guest's HEAD (agentproto.BundleRefHead), "" when the
	// bundle has none.
	Head string
	// Tip is the guest's work (agentproto.BundleRefWork): Head with its
	// uncommitted changes on top.
	Tip string

	top     string // the host's work tree
	dir     string // private temporary directory, removed by Close
	staging string // bare repository in dir
}

// Open reads a bundle of a VM's work from r (at most max bytes, the
// configured pull.max_size) and takes its objects, verified, into a
// private staging repository that borrows the objects of the host
// repository whose work tree is top. Nothing in top changes.
func Open(ctx context.Context, top string, r io.Reader, max int64) (*Work, error) {
	common, err := git(ctx, top, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return nil, fmt.Errorf("pulling into %s: %w", top, err)
	}
	format, err := git(ctx, top, "rev-parse", "--show-object-format")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "banger-pull-")
	if err != nil {
		return nil, fmt.Errorf("pulling: %w", err)
	}
	w := &Work{top: top, dir: dir, staging: filepath.Join(dir, "staging.git")}
	if err := w.open(ctx, oneLine(common), oneLine(format), r, max); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

func (w *Work) open(ctx context.Context, common, format string, r io.Reader, max int64) error {
	bundle := filepath.Join(w.dir, "work.bundle")
	if err := receive(bundle, r, max); err != nil {
		return err
	}
	header, err := checkBundleHeader(bundle, format)
	if err != nil {
		return err
	}

	if _, err := git(ctx, w.dir, "init", "-q", "--bare", "--template=", "--object-format="+format, w.staging); err != nil {
		return err
	}
	alternates := filepath.Join(w.staging, "objects", "info", "alternates")
	if err := os.MkdirAll(filepath.Dir(alternates), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(alternates, []byte(filepath.Join(common, "objects")+"\n"), 0o600); err != nil {
		return err
	}

	if _, err := git(ctx, w.staging, staged("bundle", "verify", bundle)...); err != nil {
		if missing := missingPrerequisites(stderrOf(err)); len(missing) > 0 {
			return fmt.Errorf("%w: commit %s is not in %s: pull into the repository the workspace came from, after fetching what it is missing",
				ErrMissingBase, missing[0], w.top)
		}
		return fmt.Errorf("%w: git does not accept it: %w", ErrBadBundle, err)
	}
	// git fetch from a bundle does not check the objects (git 2.39 ignores
	// fetch.fsckObjects for bundles; TestOpenRefuses saw it let a tree
	// entry ".git/hooks/post-checkout" through), so the pack goes through
	// index-pack --strict here: every object fsck-checked (tree entries
	// named .git or .GIT, "..", holding a slash; malformed commits), every
	// link present, thin deltas completed from the host's objects.
	f, err := os.Open(bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pack := io.NewSectionReader(f, header.size, fi.Size()-header.size)
	if _, err := (gitRun{dir: w.staging, args: staged("index-pack", "--stdin", "--fix-thin", "--strict"), stdin: pack}).run(ctx); err != nil {
		return fmt.Errorf("%w: its objects fail git's checks (fsck): %w", ErrBadBundle, err)
	}
	for _, ref := range []string{agentproto.BundleRefWork, agentproto.BundleRefHead} {
		id, ok := header.refs[ref]
		if !ok {
			continue
		}
		if _, err := git(ctx, w.staging, "update-ref", ref, id); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadBundle, ref, err)
		}
	}

	if w.Tip, err = w.commitAt(ctx, agentproto.BundleRefWork); err != nil {
		return err
	}
	tips := []string{w.Tip}
	if _, ok := header.refs[agentproto.BundleRefHead]; ok {
		if w.Head, err = w.commitAt(ctx, agentproto.BundleRefHead); err != nil {
			return err
		}
		tips = append(tips, w.Head)
	}
	// Everything the refs reach is there, down to the prerequisites.
	walk := append(append([]string{"rev-list", "--objects", "--quiet"}, tips...), "--not")
	if _, err := git(ctx, w.staging, append(walk, header.prerequisites...)...); err != nil {
		return fmt.Errorf("%w: it lacks objects its refs reach: %w", ErrBadBundle, err)
	}
	return nil
}

// commitAt returns the id ref holds in the staging repository, refusing
// anything but a commit (a tag, a tree or a blob).
func (w *Work) commitAt(ctx context.Context, ref string) (string, error) {
	id, err := git(ctx, w.staging, "rev-parse", "--verify", "-q", ref)
	if err != nil {
		return "", fmt.Errorf("%w: %s is missing after indexing: %w", ErrBadBundle, ref, err)
	}
	kind, err := git(ctx, w.staging, "cat-file", "-t", oneLine(id))
	if err != nil {
		return "", err
	}
	if oneLine(kind) != "commit" {
		return "", fmt.Errorf("%w: %s names a %s, not a commit", ErrBadBundle, ref, oneLine(kind))
	}
	return oneLine(id), nil
}

// Close removes the staging repository and the bundle.
func (w *Work) Close() error {
	if w == nil || w.dir == "" {
		return nil
	}
	err := os.RemoveAll(w.dir)
	w.dir = ""
	return err
}

// receive copies at most max bytes of r to a new private file at path.
func receive(path string, r io.Reader, max int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("receiving the VM's work: %w", err)
	}
	if n > max {
		return fmt.Errorf("%w: it is larger than %d bytes, the limit pull.max_size sets: raise pull.max_size in the config, or pull fewer changes (vm diff shows them)", ErrTooLarge, max)
	}
	return nil
}

// bundleHeader is what a bundle's header says.
type bundleHeader struct {
	refs          map[string]string // ref -> object id
	prerequisites []string
	size          int64 // bytes up to and including the blank line
}

// checkBundleHeader reads the header of the bundle at path, refusing one
// that is not v2 (or v3 with no capability but the host's object format,
// as a SHA-256 repository's bundles are), names refs other than the
// agent's or lacks agentproto.BundleRefWork, or is longer than maxHeader.
func checkBundleHeader(path, objectFormat string) (bundleHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return bundleHeader{}, err
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, maxHeader))
	h := bundleHeader{refs: map[string]string{}}
	v3 := false
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) || errors.Is(err, io.EOF) {
				return bundleHeader{}, fmt.Errorf("%w: its header is cut short or longer than %d bytes", ErrBadBundle, maxHeader)
			}
			return bundleHeader{}, err
		}
		h.size += int64(len(line))
		if h.size > maxHeader {
			return bundleHeader{}, fmt.Errorf("%w: its header is longer than %d bytes", ErrBadBundle, maxHeader)
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case first:
			switch string(line) {
			case "# v2 git bundle":
			case "# v3 git bundle":
				v3 = true
			default:
				return bundleHeader{}, fmt.Errorf("%w: it does not start with \"# v2 git bundle\"", ErrBadBundle)
			}
		case len(line) > 0 && line[0] == '@':
			if !v3 || string(line) != "@object-format="+objectFormat {
				return bundleHeader{}, fmt.Errorf("%w: it asks for a capability other than the host repository's object format (%s)", ErrBadBundle, objectFormat)
			}
		case len(line) == 0:
			if _, ok := h.refs[agentproto.BundleRefWork]; !ok {
				return bundleHeader{}, fmt.Errorf("%w: it lacks %s", ErrBadBundle, agentproto.BundleRefWork)
			}
			return h, nil
		case line[0] == '-':
			id, _, _ := strings.Cut(string(line[1:]), " ")
			if !isHexID(id) {
				return bundleHeader{}, fmt.Errorf("%w: a prerequisite line does not start with a full object id", ErrBadBundle)
			}
			h.prerequisites = append(h.prerequisites, id)
		default:
			id, ref, ok := strings.Cut(string(line), " ")
			if !ok || !isHexID(id) {
				return bundleHeader{}, fmt.Errorf("%w: a header line is neither a prerequisite nor \"<id> <ref>\"", ErrBadBundle)
			}
			if ref != agentproto.BundleRefWork && ref != agentproto.BundleRefHead {
				return bundleHeader{}, fmt.Errorf("%w: it carries ref %q; only %s and %s are accepted", ErrBadBundle, ref, agentproto.BundleRefHead, agentproto.BundleRefWork)
			}
			if _, dup := h.refs[ref]; dup {
				return bundleHeader{}, fmt.Errorf("%w: it names %s twice", ErrBadBundle, ref)
			}
			h.refs[ref] = id
		}
	}
}

// missingPrerequisites returns the ids `git bundle verify` lists after
// "Repository lacks these prerequisite commits:".
func missingPrerequisites(stderr string) []string {
	var ids []string
	listing := false
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "error:"))
		if strings.Contains(line, "lacks these prerequisite commits") {
			listing = true
			continue
		}
		if !listing {
			continue
		}
		id, _, _ := strings.Cut(line, " ")
		if isHexID(id) {
			ids = append(ids, id)
		}
	}
	return ids
}
