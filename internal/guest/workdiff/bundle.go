package workdiff

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// maxHave bounds BundleParams.Have.
const maxHave = 64

// Bundle writes the work of the git workspace at dir to w as a git bundle
// with the refs agentproto.BundleRefHead (HEAD, when born) and
// agentproto.BundleRefWork (W, or HEAD when nothing is uncommitted). The
// commits of p.Have that the guest has become its prerequisites, so their
// objects are not sent again; the pack is thin (`git bundle create`
// builds it the same way, but refuses raw ids as refs, hence the header
// written here).
func Bundle(ctx context.Context, dir string, p agentproto.BundleParams, w io.Writer) error {
	if len(p.Have) > maxHave {
		return fmt.Errorf("%w: %d Have commits are more than %d", ErrBadParams, len(p.Have), maxHave)
	}
	for _, id := range p.Have {
		if err := checkID("Have", id); err != nil {
			return err
		}
	}
	if err := checkVM(p.VM); err != nil {
		return err
	}
	if err := checkMax(p.MaxBytes); err != nil {
		return err
	}
	s, err := openGit(ctx, dir, "", p.VM)
	if err != nil {
		return err
	}
	defer s.close()
	tip := s.tip()
	if tip == "" {
		return fmt.Errorf("%w: the repository at %s has no commits and no files", ErrNoWork, dir)
	}
	prereqs, err := s.present(ctx, p.Have)
	if err != nil {
		return err
	}
	format, err := s.line(ctx, "rev-parse", "--show-object-format")
	if err != nil {
		return fmt.Errorf("reading the repository's object format: %w", err)
	}
	out, err := newAnswer(p.MaxBytes)
	if err != nil {
		return err
	}
	defer out.close()
	var hdr, revs strings.Builder
	if format == "sha1" {
		hdr.WriteString("# v2 git bundle\n")
	} else {
		fmt.Fprintf(&hdr, "# v3 git bundle\n@object-format=%s\n", format)
	}
	for _, id := range prereqs {
		fmt.Fprintf(&hdr, "-%s\n", id)
		fmt.Fprintf(&revs, "^%s\n", id)
	}
	if s.head != "" {
		fmt.Fprintf(&hdr, "%s %s\n", s.head, agentproto.BundleRefHead)
		fmt.Fprintf(&revs, "%s\n", s.head)
	}
	fmt.Fprintf(&hdr, "%s %s\n\n", tip, agentproto.BundleRefWork)
	fmt.Fprintf(&revs, "%s\n", tip)
	io.WriteString(out, hdr.String())
	if err := s.run(ctx, strings.NewReader(revs.String()), out, "pack-objects", "--stdout", "--thin", "--delta-base-offset", "--revs", "--quiet"); err != nil {
		return fmt.Errorf("packing the work: %w", err)
	}
	return out.send(w, "bundle", "")
}

// present keeps the ids that name commits in the repository.
func (s *snapshot) present(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out strings.Builder
	in := strings.NewReader(strings.Join(ids, "\n") + "\n")
	if err := s.run(ctx, in, &out, "cat-file", "--batch-check=%(objectname) %(objecttype)"); err != nil {
		return nil, fmt.Errorf("looking up the host's commits: %w", err)
	}
	var have []string
	seen := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		id, typ, _ := strings.Cut(l, " ")
		if typ == "commit" && !seen[id] {
			seen[id] = true
			have = append(have, id)
		}
	}
	return have, nil
}
