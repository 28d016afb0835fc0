package firecracker

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTrimConsole(t *testing.T) {
	for _, collapse := range []bool{true, false} {
		name := "copy"
		if collapse {
			name = "collapse"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "console.log")
			var data []byte
			for i := 0; len(data) < 100<<10; i++ {
				data = append(data, []byte("line of console output\n")...)
			}
			data = append(data, []byte("THE END\n")...)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			const limit = 16 << 10
			cut, err := trimConsole(path, limit, collapse)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if int64(len(b)) > limit || len(b) == 0 || int64(len(b))+cut != int64(len(data)) {
				t.Errorf("after the trim: %d bytes, cut %d (limit %d, was %d)", len(b), cut, limit, len(data))
			}
			if !bytes.HasSuffix(b, []byte("THE END\n")) {
				t.Errorf("the newest bytes were not kept")
			}
			if cut, err := trimConsole(path, limit, collapse); err != nil || cut != 0 {
				t.Errorf("a second trim cut %d, %v", cut, err)
			}
		})
	}
	if cut, err := TrimConsole(filepath.Join(t.TempDir(), "missing"), 10); err != nil || cut != 0 {
		t.Errorf("TrimConsole of a missing file = %d, %v", cut, err)
	}
}

// PunchHead frees the head of a file another process writes at its own
// offset: the disk use goes down, the size and the newest bytes stay.
func TestPunchHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "firecracker.metrics")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600) // no O_APPEND, like Firecracker
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := bytes.Repeat([]byte("m"), 4095)
	line = append(line, '\n')
	for range 64 {
		w.Write(line)
	}
	const limit = 64 << 10
	punched, err := PunchHead(path, limit)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("the filesystem of %s cannot punch holes", path)
		}
		t.Fatal(err)
	}
	w.Write([]byte("newest\n")) // the writer goes on at its offset
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if punched == 0 || st.Blocks*512 > limit+8192 || st.Size != 64*4096+7 {
		t.Errorf("punched %d; now %d bytes on disk, size %d", punched, st.Blocks*512, st.Size)
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasSuffix(b, append(line, []byte("newest\n")...)) {
		t.Error("the newest lines were lost")
	}
	if again, err := PunchHead(path, limit); err != nil || again != 0 {
		t.Errorf("a second PunchHead punched %d, %v", again, err)
	}
}
