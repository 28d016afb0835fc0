package workdiff

import (
	"fmt"
	"io"
	"os"
)

// answer is an answer built in a temporary file before any of it is
// sent, so one over the limit is refused whole. Past the limit it only
// counts, so the refusal can say the full size without filling the
// guest's disk.
type answer struct {
	f     *os.File
	n     int64 // bytes written, counted past the limit too
	limit int64 // 0: none
	err   error // the first write error
}

func newAnswer(limit int64) (*answer, error) {
	f, err := os.CreateTemp("", "banger-workdiff-answer-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file in %s for the answer: %w", os.TempDir(), err)
	}
	os.Remove(f.Name()) // open only: nothing is left behind
	return &answer{f: f, limit: limit}, nil
}

func (a *answer) over() bool { return a.limit > 0 && a.n > a.limit }

func (a *answer) Write(p []byte) (int, error) {
	a.n += int64(len(p))
	if a.err != nil || a.over() {
		return len(p), nil
	}
	if _, err := a.f.Write(p); err != nil {
		a.err = fmt.Errorf("writing the answer to a temporary file: %w", err)
	}
	return len(p), nil
}

// send copies the answer to w, or refuses it (what names it) when it
// is over the limit.
func (a *answer) send(w io.Writer, what, hint string) error {
	defer a.f.Close()
	if a.over() {
		return tooLarge(what, a.n, a.limit, hint)
	}
	if a.err != nil {
		return a.err
	}
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, a.f)
	return err
}

func (a *answer) close() { a.f.Close() }
