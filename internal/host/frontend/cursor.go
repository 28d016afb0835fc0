package frontend

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Cursors remember, per VM and session, the output offset an attacher has
// delivered up to, so the next attach resumes there: output produced while
// nobody was attached is replayed and nothing is delivered twice. The
// session's id (not its name, which may be reused after rm) keys a cursor.
type Cursors struct {
	// Dir holds the cursors: <state dir>/attach.
	Dir string
}

// path is where the cursor of a VM's session lives; with id "" the VM's
// directory of cursors.
func (c *Cursors) path(vm, id string) string {
	if id == "" {
		return filepath.Join(c.Dir, url.PathEscape(vm))
	}
	return filepath.Join(c.Dir, url.PathEscape(vm), url.PathEscape(id))
}

// Load returns the saved offset of a session; ok is false when there is
// none (never attached, or the cursor is unreadable).
func (c *Cursors) Load(vm, id string) (offset int64, ok bool) {
	if c == nil || id == "" {
		return 0, false
	}
	b, err := os.ReadFile(c.path(vm, id))
	if err != nil {
		return 0, false
	}
	return parseCursor(b)
}

func parseCursor(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Save records offset as the point a session's output was delivered up to.
func (c *Cursors) Save(vm, id string, offset int64) error {
	f, err := c.open(vm, id)
	if err != nil {
		return err
	}
	defer f.close()
	return f.set(offset)
}

// Forget removes a session's cursor, or with id "" every cursor of the
// VM (it was deleted). A cursor that does not exist is no error.
func (c *Cursors) Forget(vm, id string) error {
	if c == nil {
		return nil
	}
	if err := os.RemoveAll(c.path(vm, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forgetting the attach cursor of %s: %w", vm, err)
	}
	return nil
}

// cursorFile is an open cursor, rewritten in place after every chunk.
type cursorFile struct{ f *os.File }

// open opens (creating) a session's cursor file, private to the user.
func (c *Cursors) open(vm, id string) (*cursorFile, error) {
	p := c.path(vm, id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("creating the attach cursor directory: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the attach cursor: %w", err)
	}
	return &cursorFile{f}, nil
}

// load reads the offset the file holds.
func (c *cursorFile) load() (int64, bool) {
	b := make([]byte, 32)
	n, _ := c.f.ReadAt(b, 0)
	return parseCursor(b[:n])
}

// set overwrites the offset; the fixed width keeps a shorter number from
// leaving digits of a longer one behind.
func (c *cursorFile) set(off int64) error {
	if c == nil {
		return nil
	}
	_, err := c.f.WriteAt(fmt.Appendf(nil, "%020d\n", off), 0)
	return err
}

func (c *cursorFile) close() {
	if c != nil {
		c.f.Close()
	}
}
