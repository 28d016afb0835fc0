package daemon_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/journal"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// bangerd logs to its stderr, for the journal, when stderr is the stream
// JOURNAL_STREAM names (as under systemd) or --log-to-stderr says so, and
// then writes no log file and reports none; otherwise it logs to the file
// and its stderr stays quiet. Main runs in-process, as bangerd runs it.
func TestMainLogsToTheJournal(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		streamIsErr bool // JOURNAL_STREAM names stderr (else another file)
		journal     bool
	}{
		{"JOURNAL_STREAM is stderr", nil, true, true},
		{"JOURNAL_STREAM inherited, stderr elsewhere", nil, false, false},
		{"--log-to-stderr", []string{"--log-to-stderr"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := daemontest.ShortTempDir(t)
			dir := t.TempDir()
			stderr, _ := os.Create(filepath.Join(dir, "stderr"))
			other, _ := os.Create(filepath.Join(dir, "other"))
			defer stderr.Close()
			defer other.Close()
			named := other
			if tt.streamIsErr {
				named = stderr
			}
			fi, _ := named.Stat()
			st := fi.Sys().(*syscall.Stat_t)
			t.Setenv(journal.EnvStream, fmt.Sprintf("%d:%d", st.Dev, st.Ino))
			t.Setenv("BANGER_HOME", root)
			t.Setenv("HOME", filepath.Join(root, "home"))

			exited := make(chan int, 1)
			go func() { exited <- daemon.Main(tt.args, io.Discard, stderr) }()
			cfg := daemontest.Config(t, root)
			cl := client.New(cfg.Paths.Socket())
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := poll.Until(ctx, 20*time.Millisecond, func() (bool, error) {
				select {
				case code := <-exited:
					return false, fmt.Errorf("bangerd exited with %d: %s", code, readAll(stderr.Name()))
				default:
				}
				_, err := cl.DaemonStatus(ctx)
				return err == nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			status, err := cl.DaemonStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.Shutdown(ctx, "test"); err != nil {
				t.Fatal(err)
			}
			if code := <-exited; code != 0 {
				t.Fatalf("bangerd exited with %d: %s", code, readAll(stderr.Name()))
			}

			logged := readAll(stderr.Name())
			_, fileErr := os.Stat(cfg.Paths.LogFile())
			if tt.journal {
				for _, want := range []string{`<6>level=INFO msg="bangerd starting"`, `<6>level=INFO msg="bangerd ready"`, `msg="bangerd shutting down" reason=test`} {
					if !strings.Contains(logged, want) {
						t.Errorf("stderr lacks %s:\n%s", want, logged)
					}
				}
				if fileErr == nil {
					t.Errorf("a log file %s was written while logging to the journal", cfg.Paths.LogFile())
				}
				if status.LogFile != "" {
					t.Errorf("status log_file = %q, want none", status.LogFile)
				}
			} else {
				if logged != "" {
					t.Errorf("stderr not the journal, yet logged to:\n%s", logged)
				}
				if fileErr != nil || status.LogFile != cfg.Paths.LogFile() {
					t.Errorf("log file %s: %v, status log_file %q; want the file written and reported", cfg.Paths.LogFile(), fileErr, status.LogFile)
				}
			}
			if status.ManagedBy != "" {
				t.Errorf("managed_by %q without systemd having started the process", status.ManagedBy)
			}
		})
	}
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
