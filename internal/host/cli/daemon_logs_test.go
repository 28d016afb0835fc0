package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/logrotate"
)

// record is one JSON log line as bangerd writes it.
func record(i int) string { return fmt.Sprintf(`{"msg":"record %d"}`, i) }

// writeRotatedLog writes records 1..n through the daemon's rotating writer
// with a limit that holds two records per file, and returns the log path.
func writeRotatedLog(t *testing.T, home string, n int) string {
	t.Helper()
	dir := filepath.Join(home, "state")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bangerd.log")
	w, err := logrotate.Open(path, int64(2*len(record(1)+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= n; i++ {
		if _, err := w.Write([]byte(record(i) + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// daemon logs reads the rotated backup first, so -n counts across both.
func TestDaemonLogsReadsTheRotatedBackup(t *testing.T) {
	tests := []struct {
		name  string
		lines string
		want  []int
	}{
		{name: "the live file holds enough", lines: "1", want: []int{5}},
		{name: "the backup supplies the older records", lines: "3", want: []int{3, 4, 5}},
		{name: "more than both hold", lines: "50", want: []int{3, 4, 5}},
		{name: "all", lines: "0", want: []int{3, 4, 5}},
	}
	home := t.TempDir()
	path := writeRotatedLog(t, home, 5) // 1 2 | 3 4 -> backup, 5 live
	if b, _ := os.ReadFile(path); string(b) != record(5)+"\n" {
		t.Fatalf("live log = %q: the writer did not rotate as the test expects", b)
	}
	env := map[string]string{"BANGER_HOME": home, "HOME": t.TempDir()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, code := run(t, env, "daemon", "logs", "--json", "-n", tt.lines)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var want []string
			for _, i := range tt.want {
				want = append(want, record(i))
			}
			if diff := cmp.Diff(want, lines(out)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

// lines splits printed output into its lines.
func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// syncBuffer is a bytes.Buffer safe for the follower and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon logs -f goes on with the new file after the daemon rotates.
func TestDaemonLogsFollowsARotation(t *testing.T) {
	home := t.TempDir()
	path := writeRotatedLog(t, home, 1)
	env := map[string]string{"BANGER_HOME": home, "HOME": t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"daemon", "logs", "--json", "-f"}, &App{Stdout: &out, Stderr: &errb, Env: config.MapEnv(env)})
	}()
	waitFor := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("the follower never printed %s; it printed %q (stderr %q)", want, out.String(), errb.String())
			}
		}
	}
	waitFor(record(1))
	w, err := logrotate.Open(path, int64(len(record(1)+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, i := range []int{2, 3} { // 2 rotates 1 away, 3 rotates 2 away
		w.Write([]byte(record(i) + "\n"))
		waitFor(record(i))
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	if diff := cmp.Diff([]string{record(1), record(2), record(3)}, lines(out.String())); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}
