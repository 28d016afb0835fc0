package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/loopfs"
)

// TestFullFilesystem opens a store on a small filesystem of the test's
// own and fills it to the last block. The first write that finds it full
// spends the reserve and succeeds; once the reserve is spent, every write
// fails with ErrFull, as a failed_precondition naming the directory to
// free space in — on every pooled connection, each left usable (no
// transaction left open by a failed COMMIT) — while reads keep working.
// Once space is freed, concurrent writes on all connections succeed, the
// reserve is made again and the database passes its integrity check.
func TestFullFilesystem(t *testing.T) {
	mnt := loopfs.Mount(t, 128<<20)
	ctx := context.Background()
	path := filepath.Join(mnt, "state", "banger.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(ReservePath(path)); err != nil || fi.Size() != ReserveBytes {
		t.Fatalf("reserve after Open: %v, %v", fi, err)
	}
	// value is 256 KiB that no page can share with another.
	value := func() string {
		b := make([]byte, 128<<10)
		rand.Read(b)
		return hex.EncodeToString(b)
	}

	fillers := []string{loopfs.Fill(t, mnt, 0)}
	if err := s.SetHostFact(ctx, "through-the-reserve", value()); err != nil {
		t.Fatalf("a write on a full filesystem, with the reserve: %v", err)
	}
	if _, err := os.Stat(ReservePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the reserve after it was needed: %v, want it spent", err)
	}

	fillers = append(fillers, loopfs.Fill(t, mnt, 0))
	for i := range 16 {
		err := s.SetHostFact(ctx, fmt.Sprintf("refused-%d", i), value())
		if !errors.Is(err, ErrFull) || !errors.Is(err, api.ErrFailedPrecondition) {
			t.Fatalf("write %d on a full filesystem: %v, want ErrFull as failed_precondition", i, err)
		}
		for _, want := range []string{"the filesystem holding " + path + " is full", "free space in " + filepath.Dir(path), "nothing was changed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("write %d: %q does not say %q", i, err, want)
			}
		}
	}
	if _, _, err := s.HostFact(ctx, "through-the-reserve"); err != nil {
		t.Errorf("a read on a full filesystem: %v", err)
	}

	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.SetHostFact(ctx, fmt.Sprintf("after-%d", i), value())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a write after space was freed: %v", err)
		}
	}
	if _, _, err := s.HostFact(ctx, "refused-0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused write was kept: %v", err)
	}
	if fi, err := os.Stat(ReservePath(path)); err != nil || fi.Size() != ReserveBytes {
		t.Errorf("reserve after space was freed: %v, %v, want it made again", fi, err)
	}
	var res string
	if err := s.DB().QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("PRAGMA integrity_check: %q, %v", res, err)
	}
}

// TestOpenOnAFullFilesystem: a store that cannot be created for want of
// space says so, naming the directory, not "database or disk is full".
func TestOpenOnAFullFilesystem(t *testing.T) {
	mnt := loopfs.Mount(t, 32<<20)
	dir := filepath.Join(mnt, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	loopfs.Fill(t, mnt, 0)
	s, err := Open(context.Background(), filepath.Join(dir, "banger.db"))
	if err == nil {
		s.Close()
		t.Fatal("Open on a full filesystem succeeded")
	}
	t.Logf("Open: %v", err)
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "free space in "+dir) {
		t.Errorf("Open on a full filesystem: %v, want ErrFull naming %s", err, dir)
	}
}
