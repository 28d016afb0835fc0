package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Leftover is something in the catalog's directory that no image record
// explains: what a crash leaves behind.
type Leftover struct {
	Path string
	Why  string
}

// Leftovers lists staging directories (an image being made), image
// directories without an image record (a crash between committing the
// directory and inserting the record) and temporary files and directories
// inside an image's directory (heal's rebuilds, replaced files; every
// such name starts with a dot, and no artifact's does). While an image
// operation runs, its staging directory is expected.
func (c *Catalog) Leftovers(ctx context.Context) ([]Leftover, error) {
	entries, err := os.ReadDir(c.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, err := c.Store.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, r := range recs {
		known[r.ID] = true
	}
	var out []Leftover
	for _, e := range entries {
		p := filepath.Join(c.Root, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), ".staging-"):
			out = append(out, Leftover{Path: p, Why: "an image being made (staging)"})
		case strings.HasPrefix(e.Name(), "."):
			out = append(out, Leftover{Path: p, Why: "a temporary file of the image catalog"})
		case !known[e.Name()]:
			out = append(out, Leftover{Path: p, Why: "an image directory without an image record"})
		case e.IsDir():
			inner, _ := os.ReadDir(p)
			for _, f := range inner {
				if strings.HasPrefix(f.Name(), ".") {
					out = append(out, Leftover{Path: filepath.Join(p, f.Name()), Why: "a temporary file of an image's rebuild"})
				}
			}
		}
	}
	return out, nil
}

// CleanLeftovers removes every Leftover. The daemon calls it at start,
// before any operation runs, so each one is a crash's.
func (c *Catalog) CleanLeftovers(ctx context.Context) ([]string, error) {
	left, err := c.Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, l := range left {
		if err := removeTree(l.Path); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, l.Path)
	}
	return removed, errors.Join(errs...)
}
