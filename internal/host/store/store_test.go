package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Every pooled connection must carry the profile, not just the first one:
// hold several connections open at once and read each pragma back on each.
func TestPragmasOnEveryPooledConnection(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const n = 5
	var conns []interface{ Close() error }
	for i := range n {
		c, err := s.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		got := map[string]string{}
		for _, p := range []string{"journal_mode", "busy_timeout", "foreign_keys", "synchronous"} {
			var v string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p).Scan(&v); err != nil {
				t.Fatal(err)
			}
			got[p] = v
		}
		want := map[string]string{"journal_mode": "wal", "busy_timeout": "10000", "foreign_keys": "1", "synchronous": "1"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("connection %d pragmas (-want +got):\n%s", i, diff)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestMigrationsFromEmptyAndRerun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	ctx := context.Background()
	migs, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open round %d: %v", round, err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != len(migs) {
			t.Errorf("round %d: schema version %d, want %d", round, v, len(migs))
		}
		var applied int
		s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied)
		if applied != len(migs) {
			t.Errorf("round %d: %d migration rows, want %d (re-run must not re-apply)", round, applied, len(migs))
		}
		s.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.DB().ExecContext(ctx, `INSERT INTO schema_migrations VALUES (999, 'future', 0)`)
	s.Close()
	if _, err := Open(ctx, path); err == nil {
		t.Fatal("opening a store from a newer banger succeeded; want a clear error")
	}
}

func TestForeignKeysHold(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.CreateImage(ctx, Image{ID: "img1", Name: "base", State: "ready"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"vm with unknown image", func() error {
			return s.CreateVM(ctx, VM{ID: "vmX", Name: "x", ImageID: "nope", State: "stopped"})
		}},
		{"lease for unknown vm", func() error {
			return s.CreateLease(ctx, Lease{IP: "172.30.0.9", VMID: "nope", MAC: "02:00:00:00:00:09"})
		}},
		{"session for unknown vm", func() error {
			return s.PutSession(ctx, Session{ID: "s1", VMID: "nope", Name: "s", State: "running"})
		}},
		{"image with unknown parent", func() error {
			return s.CreateImage(ctx, Image{ID: "img2", Name: "child", ParentID: "nope", State: "ready"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
		})
	}

	// An image in use cannot be deleted; deleting the VM cascades its lease
	// and sessions, after which the image can go.
	if err := s.CreateVM(ctx, VM{ID: "vm1", Name: "brisk-otter", ImageID: "img1", State: "running"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateLease(ctx, Lease{IP: "172.30.0.2", VMID: "vm1", MAC: "02:00:00:00:00:02"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, Session{ID: "s1", VMID: "vm1", Name: "agent", State: "running"}); err != nil {
		t.Fatal(err)
	}
	// Putting it again updates it; an unnamed session is recorded under its id.
	if err := s.PutSession(ctx, Session{ID: "s1", VMID: "vm1", Name: "agent", State: "exited", Meta: `{"x":1}`}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, Session{ID: "s2", VMID: "vm1", State: "running"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListSessions(ctx, "vm1"); len(got) != 2 || got[0].State != "exited" || got[0].Meta != `{"x":1}` || got[1].Name != "s2" {
		t.Fatalf("sessions after updates: %+v", got)
	}
	if err := s.DeleteSession(ctx, "vm1", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteImage(ctx, "img1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("deleting an image in use: got %v, want ErrConflict", err)
	}
	if err := s.DeleteVM(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	leases, _ := s.ListLeases(ctx)
	sessions, _ := s.CountSessions(ctx, "vm1")
	if len(leases) != 0 || sessions != 0 {
		t.Errorf("after vm delete: %d leases, %d sessions; want cascade to 0", len(leases), sessions)
	}
	if err := s.DeleteImage(ctx, "img1"); err != nil {
		t.Fatalf("deleting unused image: %v", err)
	}
	if err := s.DeleteImage(ctx, "img1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: got %v, want ErrNotFound", err)
	}
}

// Many concurrent writers: none may see SQLITE_BUSY, and every row lands.
func TestConcurrentWriters(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.CreateImage(ctx, Image{ID: "img", Name: "base", State: "ready"}); err != nil {
		t.Fatal(err)
	}
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*2)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("vm%02d", i)
			if err := s.CreateVM(ctx, VM{ID: id, Name: "n" + id, ImageID: "img", State: "stopped"}); err != nil {
				errs <- err
				return
			}
			if err := s.CreateLease(ctx, Lease{IP: fmt.Sprintf("172.30.0.%d", 10+i), VMID: id, MAC: fmt.Sprintf("02:00:00:00:00:%02x", i)}); err != nil {
				errs <- err
			}
			// Readers interleave with the writers.
			if _, err := s.CountVMs(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n, _ := s.CountVMs(ctx)
	leases, _ := s.ListLeases(ctx)
	if n != writers || len(leases) != writers {
		t.Errorf("got %d vms and %d leases, want %d each", n, len(leases), writers)
	}
}

func TestOperationRoundTripAndFailUnfinished(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	running := api.Operation{
		ID: "op1", Kind: "doctor", State: api.OperationRunning, CurrentStage: "probe",
		Stages: []api.Stage{
			{Name: "checks", StartedAt: t0, FinishedAt: t0.Add(time.Second), Duration: api.Duration(time.Second)},
			{Name: "probe", StartedAt: t0.Add(time.Second)},
		},
		CreatedAt: t0, UpdatedAt: t0.Add(time.Second),
	}
	done := api.Operation{ID: "op2", Kind: "doctor", State: api.OperationSucceeded, Stages: []api.Stage{},
		Result: []byte(`{"ok":true}`), CreatedAt: t0, UpdatedAt: t0, FinishedAt: t0}
	for _, op := range []api.Operation{running, done} {
		if err := s.SaveOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetOperation(ctx, "op1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(running, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	at := t0.Add(5 * time.Second)
	ids, err := s.FailUnfinished(ctx, "interrupted by daemon restart", at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"op1"}, ids); diff != "" {
		t.Errorf("failed ids (-want +got):\n%s", diff)
	}
	got, _ = s.GetOperation(ctx, "op1")
	if got.State != api.OperationFailed || got.Error == nil || got.Error.Message != "interrupted by daemon restart" {
		t.Errorf("op1 after restart = %+v, want failed with the restart reason", got)
	}
	if got.Stages[1].FinishedAt != at || got.Stages[1].Duration.D() != 4*time.Second {
		t.Errorf("open stage not closed at restart: %+v", got.Stages[1])
	}
	if got2, _ := s.GetOperation(ctx, "op2"); got2.State != api.OperationSucceeded {
		t.Errorf("finished operation changed: %+v", got2)
	}
	if _, err := s.GetOperation(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing operation: %v", err)
	}
}

func TestHostFacts(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, _, err := s.HostFact(ctx, "kvm"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing fact: %v", err)
	}
	for _, v := range []string{`{"a":1}`, `{"a":2}`} {
		if err := s.SetHostFact(ctx, "kvm", v); err != nil {
			t.Fatal(err)
		}
	}
	if v, _, _ := s.HostFact(ctx, "kvm"); v != `{"a":2}` {
		t.Errorf("fact = %s, want the last write", v)
	}
}
