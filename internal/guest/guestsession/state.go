package guestsession

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// stateVersion is the version of the state file layout.
const stateVersion = 1

// record is a session's state file: its Info plus what a later agent needs
// to tell the same process from a pid that was reused.
type record struct {
	Version int  `json:"version"`
	Info    Info `json:"info"`
	// StartTicks is field 22 of /proc/PID/stat (start time in clock ticks
	// after boot) when the process started.
	StartTicks uint64 `json:"start_ticks"`
	// BootID is /proc/sys/kernel/random/boot_id of the boot that ran it.
	BootID string `json:"boot_id"`
}

func statePath(dir, id string) string  { return filepath.Join(dir, id+".json") }
func outputPath(dir, id string) string { return filepath.Join(dir, id+".out") }

// tmpMarker is in the name of every temporary file this package writes
// (atomicfile names them ".NAME.tmp-*"); NewManager removes leftovers from
// a crash.
const tmpMarker = ".tmp-"

func writeRecord(dir string, rec record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(statePath(dir, rec.Info.ID), append(data, '\n'), 0o600, 0)
}

// readRecords loads every state file in dir and removes temporary files a
// crashed write left behind. Files it cannot read are reported in bad and
// left alone.
func readRecords(dir string) (recs []record, bad []error, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.Contains(name, tmpMarker) {
			os.Remove(path)
			continue
		}
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		var rec record
		if err := json.Unmarshal(data, &rec); err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if rec.Info.ID+".json" != name {
			bad = append(bad, fmt.Errorf("%s: holds session %q", path, rec.Info.ID))
			continue
		}
		recs = append(recs, rec)
	}
	return recs, bad, nil
}

// The output log is a sequence of frames, one per segment:
// stream (1 byte), offset (8 bytes, big endian), length (4 bytes), data.
const frameHeader = 13

func streamCode(s Stream) byte {
	switch s {
	case StreamStdout:
		return 1
	case StreamStderr:
		return 2
	case StreamTTY:
		return 3
	}
	return 0
}

func streamOfCode(c byte) (Stream, bool) {
	switch c {
	case 1:
		return StreamStdout, true
	case 2:
		return StreamStderr, true
	case 3:
		return StreamTTY, true
	}
	return "", false
}

func appendFrame(buf []byte, seg segment) []byte {
	var h [frameHeader]byte
	h[0] = streamCode(seg.stream)
	binary.BigEndian.PutUint64(h[1:9], uint64(seg.off))
	binary.BigEndian.PutUint32(h[9:13], uint32(len(seg.data)))
	return append(append(buf, h[:]...), seg.data...)
}

// readOutputLog replays an output log into r. A torn last frame (a crash
// mid-write) ends the replay without error.
func readOutputLog(path string, r *ring) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var h [frameHeader]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil
		}
		stream, ok := streamOfCode(h[0])
		if !ok {
			return fmt.Errorf("%s: unknown stream code %d", path, h[0])
		}
		off := int64(binary.BigEndian.Uint64(h[1:9]))
		n := binary.BigEndian.Uint32(h[9:13])
		if off < 0 || int64(n) > int64(r.limit)+1<<20 {
			return fmt.Errorf("%s: corrupt frame at offset %d", path, off)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			return nil
		}
		r.addAt(off, stream, data)
	}
}

// procStat reads the state letter and start time of a process from
// /proc/PID/stat. ok is false when there is no such process.
func procStat(procRoot string, pid int) (state byte, startTicks uint64, ok bool) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ')' are plain.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], ticks, true
}

// alive reports whether pid is still the process that started at
// startTicks, and not a zombie.
func alive(procRoot string, pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	state, ticks, ok := procStat(procRoot, pid)
	return ok && ticks == startTicks && state != 'Z' && state != 'X'
}

func readBootID(procRoot string) string {
	data, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/random/boot_id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
