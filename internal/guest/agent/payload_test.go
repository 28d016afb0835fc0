package agent

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// The agent applies this boot's payload once, in the background, and
// reports how it went; a restarted agent does not write the files again.
func TestLoadBootAppliesOncePerBoot(t *testing.T) {
	stage, home := t.TempDir(), t.TempDir()
	key := bytes.Repeat([]byte{9}, bootpayload.KeySize)
	os.WriteFile(filepath.Join(stage, bootpayload.KeyFile), key, 0o600)
	os.WriteFile(filepath.Join(stage, bootpayload.PayloadFile), []byte(`{"files":[{"path":"/root/.tok","mode":384,"data":"dDE="}]}`), 0o600)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// home is no mount point here: the agent waits mountWait, then
	// applies anyway.
	got, st := loadBoot(stage, home, 10*time.Millisecond, log)
	if !bytes.Equal(got, key) {
		t.Fatalf("key = %x", got)
	}
	waitStatus(t, st, payloadApplied)
	if b, _ := os.ReadFile(filepath.Join(home, ".tok")); string(b) != "t1" {
		t.Fatalf(".tok = %q", b)
	}

	// The guest changes the file; a restarted agent leaves it alone.
	os.WriteFile(filepath.Join(home, ".tok"), []byte("guest's"), 0o600)
	if _, st := loadBoot(stage, home, 10*time.Millisecond, log); st.Status() != payloadApplied {
		t.Errorf("restarted agent: status %q", st.Status())
	}
	time.Sleep(50 * time.Millisecond)
	if b, _ := os.ReadFile(filepath.Join(home, ".tok")); string(b) != "guest's" {
		t.Errorf("a restarted agent rewrote the file: %q", b)
	}
}

func TestLoadBootWithoutPayload(t *testing.T) {
	key, st := loadBoot(t.TempDir(), t.TempDir(), time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if key != nil || st.Status() != payloadNone {
		t.Errorf("no payload: key %x, status %q", key, st.Status())
	}
}

func waitStatus(t *testing.T, st *bootState, want string) {
	t.Helper()
	for range 500 {
		if st.Status() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("status %q, want %q", st.Status(), want)
}
