package agentproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// lineReader reads newline-terminated lines, skipping lines longer than
// MaxLineBytes whole.
type lineReader struct {
	r *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line, without its newline and surrounding space.
// A final line without a newline is returned at EOF.
func (l *lineReader) next() ([]byte, error) {
	var line []byte
	skipping := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !skipping {
			if len(line)+len(chunk) > MaxLineBytes+1 {
				skipping, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == nil && skipping:
			skipping = false // the oversized line ended; read the next one
		case err == nil:
			return bytes.TrimSpace(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			// keep reading the same line
		case len(line) > 0 && !skipping && errors.Is(err, io.EOF):
			return bytes.TrimSpace(line), nil
		default:
			return nil, err
		}
	}
}

// messageStart is how every Request and Response begins on the wire
// (encoding/json writes struct fields in order, ID first).
const messageStart = `{"id":`

// decode unmarshals a line into v. When the line does not parse, it tries
// the line's tail from its last message start: a partial line left on a
// virtio-serial port by a previous connection gets the next message glued
// to its end.
func decode(line []byte, v any) bool {
	if json.Unmarshal(line, v) == nil {
		return true
	}
	if i := bytes.LastIndex(line, []byte(messageStart)); i > 0 {
		return json.Unmarshal(line[i:], v) == nil
	}
	return false
}

// writeMessage writes v as one line with one Write call. With fresh set,
// the line starts with a newline too, which ends any partial line a
// previous connection left at the other end.
func writeMessage(w io.Writer, v any, fresh bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var buf []byte
	if fresh {
		buf = append(buf, '\n')
	}
	buf = append(append(buf, b...), '\n')
	_, err = w.Write(buf)
	return err
}

// deadliner is implemented by streams whose blocked reads and writes can
// be interrupted (net.Conn, pollable *os.File).
type deadliner interface {
	SetDeadline(time.Time) error
}

// aLongTimeAgo returns a deadline in the past, which makes blocked I/O
// return.
func aLongTimeAgo() time.Time { return time.Unix(1, 0) }
