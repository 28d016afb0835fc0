package provision

import (
	"bytes"
	"strings"
	"sync"
)

// lineWriter turns a command's output into log lines and keeps the last
// few for error messages. Carriage returns (progress bars) end a line too.
type lineWriter struct {
	mu      sync.Mutex
	log     func(string)
	partial []byte
	tail    []string
	keep    int
}

func newLineWriter(log func(string), keep int) *lineWriter {
	return &lineWriter{log: log, keep: keep}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexAny(w.partial, "\r\n")
		if i < 0 {
			break
		}
		w.emit(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line string) {
	line = strings.TrimRight(line, " \t")
	if line == "" {
		return
	}
	if w.log != nil {
		w.log(line)
	}
	w.tail = append(w.tail, line)
	if len(w.tail) > w.keep {
		w.tail = w.tail[len(w.tail)-w.keep:]
	}
}

// flush emits a last line without a newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(string(w.partial))
		w.partial = nil
	}
}

// Tail returns the last lines, joined for an error message.
func (w *lineWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}

// orNop returns log, or a log function that drops lines when log is nil.
func orNop(log func(string)) func(string) {
	if log == nil {
		return func(string) {}
	}
	return log
}
