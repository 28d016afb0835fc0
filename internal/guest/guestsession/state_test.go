package guestsession

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// restartTime is the clock of the Manager standing in for a restarted agent.
var restartTime = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func restartClock() time.Time { return restartTime }

// A second Manager on the same state dir — a restarted agent — lists the
// sessions the first one started: the running one with its pid, orphaned,
// and the exited one with its code and output.
func TestRestartedAgentRehydrates(t *testing.T) {
	dir := t.TempDir()
	first := newManager(t, dir)
	sleeper := start(t, first, Spec{Name: "sleeper", Argv: []string{"sleep", "1000"}})
	done := start(t, first, Spec{Name: "done", Argv: []string{"sh", "-c", "echo bye; exit 4"}})
	drain(t, first, done.ID)
	sleeper, _ = first.Get(sleeper.ID)
	done, _ = first.Get(done.ID)

	second := newManager(t, dir, WithClock(restartClock))
	wantSleeper := sleeper
	wantSleeper.Orphaned = true
	wantSleeper.Diagnostics = []string{"agent restarted at 2030-01-02T03:04:05Z: output after that is not captured and stdin is gone; stop the session and start it again to capture it"}
	if diff := cmp.Diff([]Info{wantSleeper, done}, second.List()); diff != "" {
		t.Errorf("List after restart (-want +got):\n%s", diff)
	}

	replay := attach(t, second, "done", -1)
	want := []Chunk{{Stream: StreamStdout, Offset: 0, Data: []byte("bye\n")}}
	if diff := cmp.Diff(want, merged(readAll(t, replay))); diff != "" {
		t.Errorf("replay of the exited session (-want +got):\n%s", diff)
	}

	orphan := attach(t, second, "sleeper", -1)
	if _, err := orphan.Next(context.Background()); !errors.Is(err, ErrOrphaned) {
		t.Errorf("Next on the orphan: %v, want ErrOrphaned", err)
	}
	if _, err := orphan.Stdin().Write([]byte("x")); !errors.Is(err, ErrOrphaned) {
		t.Errorf("writing to the orphan: %v, want ErrOrphaned", err)
	}

	if err := second.Signal("sleeper", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone := waitExit(t, second, "sleeper")
	wantGone := Info{State: StateExited, ExitedAt: restartTime, Diagnostics: append(wantSleeper.Diagnostics,
		"the process ended while no agent was its parent (agent restart or guest reboot): exit status unknown")}
	if diff := cmp.Diff(wantGone, Info{State: gone.State, ExitCode: gone.ExitCode, ExitedAt: gone.ExitedAt, Diagnostics: gone.Diagnostics}); diff != "" {
		t.Errorf("orphan after kill, as the new agent sees it (-want +got):\n%s", diff)
	}
	if got := waitExit(t, first, "sleeper"); got.Signal != "SIGKILL" {
		t.Errorf("the old agent saw the sleeper end by %q, want SIGKILL", got.Signal)
	}
}

// Loading checks that a "running" session's pid is still the process that
// was started, in the same boot.
func TestLoadChecksTheProcess(t *testing.T) {
	self := os.Getpid()
	_, ticks, ok := procStat("/proc", self)
	if !ok {
		t.Skip("no /proc/self/stat here")
	}
	boot := readBootID("/proc")
	started := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	lost := "the process ended while no agent was its parent (agent restart or guest reboot): exit status unknown"

	tests := []struct {
		name string
		rec  record
		want Info
	}{
		{
			name: "pid reused by another process",
			rec:  record{Info: Info{ID: "aaaa", PID: self, State: StateRunning, StartedAt: started}, StartTicks: ticks + 1, BootID: boot},
			want: Info{ID: "aaaa", PID: self, State: StateExited, StartedAt: started, ExitedAt: restartTime, Diagnostics: []string{lost}},
		},
		{
			name: "started in another boot",
			rec:  record{Info: Info{ID: "bbbb", PID: self, State: StateRunning, StartedAt: started}, StartTicks: ticks, BootID: "another-boot"},
			want: Info{ID: "bbbb", PID: self, State: StateExited, StartedAt: started, ExitedAt: restartTime, Diagnostics: []string{lost}},
		},
		{
			name: "already exited",
			rec:  record{Info: Info{ID: "cccc", PID: self, State: StateExited, ExitCode: intp(2), StartedAt: started, ExitedAt: started, AttachCount: 3}, StartTicks: ticks, BootID: boot},
			want: Info{ID: "cccc", PID: self, State: StateExited, ExitCode: intp(2), StartedAt: started, ExitedAt: started},
		},
		{
			name: "output log lost",
			rec:  record{Info: Info{ID: "dddd", PID: self, State: StateExited, ExitCode: intp(0), StartedAt: started, ExitedAt: started, OutputBytes: 50}},
			want: Info{ID: "dddd", PID: self, State: StateExited, ExitCode: intp(0), StartedAt: started, ExitedAt: started, OutputBytes: 50, BufferedFrom: 50},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := writeRecord(dir, tt.rec); err != nil {
				t.Fatal(err)
			}
			m := newManager(t, dir, WithClock(restartClock))
			got, err := m.Get(tt.rec.Info.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("loaded (-want +got):\n%s", diff)
			}
			var onDisk record
			data, _ := os.ReadFile(statePath(dir, tt.rec.Info.ID))
			if err := json.Unmarshal(data, &onDisk); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, onDisk.Info); diff != "" {
				t.Errorf("state file after load (-want +got):\n%s", diff)
			}
		})
	}
}

// Readers of a state file always see a whole one, however often it is
// rewritten; leftovers of a crashed write are cleaned up and unreadable
// files skipped.
func TestStateFilesAreAtomic(t *testing.T) {
	t.Run("concurrent readers see whole files", func(t *testing.T) {
		dir := t.TempDir()
		m := newManager(t, dir)
		info := start(t, m, Spec{Argv: []string{"cat"}})
		path := statePath(dir, info.ID)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var reads, bad int
		var firstBad string
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, err := os.ReadFile(path)
				var rec record
				if err == nil {
					err = json.Unmarshal(data, &rec)
				}
				reads++
				if err != nil {
					if bad == 0 {
						firstBad = err.Error()
					}
					bad++
				}
			}
		}()
		for range 200 {
			a, err := m.Attach(context.Background(), info.ID, -1)
			if err != nil {
				t.Fatal(err)
			}
			a.Detach()
		}
		close(stop)
		wg.Wait()
		if bad != 0 {
			t.Errorf("%d of %d reads saw a partial or missing state file, first: %s", bad, reads, firstBad)
		}

		var rec record
		data, _ := os.ReadFile(path)
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatal(err)
		}
		got, _ := m.Get(info.ID)
		if diff := cmp.Diff(got, rec.Info); diff != "" {
			t.Errorf("state file vs Get (-get +file):\n%s", diff)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), tmpMarker) {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}
	})

	t.Run("crash leftovers", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range map[string]string{
			"abcd.json" + tmpMarker + "123": `{"version":1,"info":{"id":"ab`,
			"junk.json":                     "{",
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		m := newManager(t, dir)
		if got := m.List(); len(got) != 0 {
			t.Errorf("List() = %+v, want nothing", got)
		}
		var names []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if diff := cmp.Diff([]string{"junk.json"}, names); diff != "" {
			t.Errorf("state dir (-want +got):\n%s", diff)
		}
	})
}

// Env values reach the process but never the metadata.
func TestEnvValuesAreNeverRecorded(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir)
	info := start(t, m, Spec{Argv: []string{"sh", "-c", "echo $API_TOKEN"}, Env: []string{"API_TOKEN=hunter2"}})
	if diff := cmp.Diff("hunter2\n", text(drain(t, m, info.ID))); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	got, _ := m.Get(info.ID)
	if diff := cmp.Diff([]string{"API_TOKEN"}, got.EnvKeys); diff != "" {
		t.Errorf("EnvKeys (-want +got):\n%s", diff)
	}
	data, _ := os.ReadFile(statePath(dir, info.ID))
	if strings.Contains(string(data), "hunter2") {
		t.Errorf("state file holds the env value:\n%s", data)
	}
}

// The output log stays bounded, and a restarted agent replays its tail.
func TestOutputLogIsBoundedAndReplayedAfterRestart(t *testing.T) {
	const limit, total = 1024, 200 << 10
	dir := t.TempDir()
	m := newManager(t, dir, WithRingSize(limit))
	info := start(t, m, Spec{Argv: []string{"head", "-c", "204800", "/dev/zero"}})
	drain(t, m, info.ID)

	st, err := os.Stat(outputPath(dir, info.ID))
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(3*limit + frameHeader); st.Size() > max {
		t.Errorf("output log is %d bytes, want at most %d", st.Size(), max)
	}

	again := newManager(t, dir, WithRingSize(limit))
	got, _ := again.Get(info.ID)
	if diff := cmp.Diff([2]int64{total - limit, total}, [2]int64{got.BufferedFrom, got.OutputBytes}); diff != "" {
		t.Errorf("[BufferedFrom, OutputBytes] after restart (-want +got):\n%s", diff)
	}
	want := []Chunk{
		{Stream: StreamGap, Offset: 0, Dropped: total - limit},
		{Stream: StreamStdout, Offset: total - limit, Data: make([]byte, limit)},
	}
	if diff := cmp.Diff(want, merged(readAll(t, attach(t, again, info.ID, 0)))); diff != "" {
		t.Errorf("replay after restart (-want +got):\n%s", diff)
	}
}
