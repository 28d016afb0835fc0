// Package journal connects bangerd's log to systemd's journal: it tells
// whether the daemon's stderr is the stream systemd opened to the journal
// for it (JOURNAL_STREAM), and makes the logger that writes there, one
// line per record with the record's level as the journal's priority.
package journal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// EnvStream is the variable systemd sets to "DEVICE:INODE" of the stream
// it connected a service's stdout or stderr to (systemd.exec(5)).
const EnvStream = "JOURNAL_STREAM"

// Connected reports whether f is the journal stream named by stream (the
// value of JOURNAL_STREAM). As systemd.exec(5) advises, the device and
// inode are compared, so a child that inherited the variable but whose
// stderr goes elsewhere (a file, a terminal) is not taken for the journal.
func Connected(stream string, f *os.File) bool {
	var dev, ino uint64
	if _, err := fmt.Sscanf(stream, "%d:%d", &dev, &ino); err != nil || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && st.Ino == ino
}

// Handler returns a slog handler for the journal: text records
// ("level=INFO msg=... key=value") without a time, which the journal adds
// itself, each prefixed with its syslog priority ("<6>") so that
// `journalctl -p warning` filters by level.
func Handler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewTextHandler(&priorityWriter{w: w}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
}

// priorityWriter prefixes each record (slog's text handler writes a
// record in one Write, beginning with "level=") with its priority.
type priorityWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// priorities maps slog's level names to syslog priorities (sd-daemon(3)).
var priorities = []struct {
	level    string
	priority string
}{
	{"level=ERROR", "<3>"},
	{"level=WARN", "<4>"},
	{"level=INFO", "<6>"},
	{"level=DEBUG", "<7>"},
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	prefix := "<6>"
	for _, pr := range priorities {
		if bytes.HasPrefix(b, []byte(pr.level)) {
			prefix = pr.priority
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
