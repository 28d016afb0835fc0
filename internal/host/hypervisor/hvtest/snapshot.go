package hvtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// snapshot is the suite's part for a hypervisor.Snapshotter, run as one
// sequence so that a real hypervisor boots one guest and saves it once
// (plus once more for the fork path): it launches a guest and waits for
// its agent; Save into an empty directory leaves the VM Paused and files
// in the directory; the paused VM is killed (pause to disk) and a Save of
// the gone VM fails, leaving its directory empty; Restores from a
// missing, an empty, a corrupt and a truncated state fail with an error
// that names the state directory (which saved state failed), leaving no
// process and no socket; two clones are
// restored from the one saved state at once, from a directory made
// read-only whose files they must not change, each onto its own copy of
// the work disk (made after the save), and are Paused until Resumed, then
// Running together; finally one clone is saved and resumed (a fork's
// path: the source keeps running).
//
// That a clone is the saved guest and not a new boot is checked three
// ways. The clones' specs boot an initramfs whose agent key differs from
// the saved guest's: a restored guest runs the saved memory and answers
// only to the saved key, which a new boot of the spec would not hold.
// The agent's uptime goes on from where it was when the guest was saved
// (the suite lets the guest run for minSavedUptime first), where a new
// boot starts from zero. With a Guest.BootIDProbe, the kernel's
// boot ID, drawn anew at every boot, is the saved guest's.
func (s *suite) snapshot(t *testing.T) {
	d := s.newDriver(t)
	sn, ok := d.(hypervisor.Snapshotter)
	if !ok {
		t.Skipf("the %s driver does not implement hypervisor.Snapshotter: no snapshot checks", d.Name())
	}
	// The clones boot (if they boot at all) with another agent key.
	otherKey := newAgentKey()
	otherInitrd := filepath.Join(t.TempDir(), "initrd-other-key.img")
	if err := WithBootKey(otherInitrd, s.guest.Initrd, otherKey); err != nil {
		t.Fatalf("adding another boot key to the initramfs: %v", err)
	}

	spec := s.spec(t)
	h := s.launch(t, d, spec)
	var saved guestMark
	step(t, "AgentHealth", func(t *testing.T) {
		s.checkHealth(t, d, h)
		// An uptime a new boot would not reach by the time it answers,
		// so that a clone's uptime tells it from one.
		saved = s.markAfter(t, d, h, minSavedUptime)
	})

	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	step(t, "Save", func(t *testing.T) { s.save(t, d, sn, h, state) })

	// The clones' work disks: copies of the saved VM's, made after the
	// save, while the saved VM is paused and before anything else runs
	// on them.
	var cloneWork []string
	for i := range 2 {
		p := filepath.Join(t.TempDir(), fmt.Sprintf("work-clone%d.ext4", i))
		if err := copySparse(p, spec.Disks[1].Path); err != nil {
			t.Fatalf("copying the saved VM's work disk: %v", err)
		}
		cloneWork = append(cloneWork, p)
	}
	stateDigests := freezeDir(t, state)

	step(t, "KillPaused", func(t *testing.T) {
		if err := d.Kill(h); err != nil {
			t.Fatalf("Kill of the paused VM: %v", err)
		}
		s.checkGone(t, d, h, spec)
	})
	// The refusals' failures do not stop the sequence: nothing after
	// depends on them.
	t.Run("SaveGoneVM", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		got, err := sn.Save(ctx, h, dir)
		if err == nil {
			t.Fatalf("Save of a killed VM succeeded (%+v); want an error", got)
		}
		t.Logf("refused: %v", err)
		if ents := dirEntries(t, dir); len(ents) > 0 {
			t.Errorf("the failed Save left files in %s: %v", dir, ents)
		}
	})
	t.Run("RestoreFailures", func(t *testing.T) { s.restoreFailures(t, sn, state) })

	// The clones outlive the subtest that restores them: their specs
	// and their clean-up belong to this test.
	var cloneSpecs []hypervisor.Spec
	for _, w := range cloneWork {
		cs := s.specFrom(t, w)
		cs.Boot.Initrd = otherInitrd
		cloneSpecs = append(cloneSpecs, cs)
	}
	var clones []hypervisor.Handle
	owner := t
	step(t, "RestoreTwiceAtOnce", func(t *testing.T) {
		clones = s.restoreAtOnce(t, owner, d, sn, cloneSpecs, state)
		for _, c := range clones {
			wantStatus(t, d, c, hypervisor.Paused)
		}
	})
	step(t, "Resume", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i, c := range clones {
			if err := sn.Resume(ctx, c); err != nil {
				t.Fatalf("Resume of clone %d: %v", i, err)
			}
		}
		// Both run at once, and each is the saved guest.
		for i, c := range clones {
			wantStatus(t, d, c, hypervisor.Running)
			s.checkSame(t, fmt.Sprintf("clone %d", i), saved, s.mark(t, d, c))
		}
	})
	step(t, "StateUnchanged", func(t *testing.T) {
		for name, want := range stateDigests {
			if got := fileDigest(t, filepath.Join(state, name)); got != want {
				t.Errorf("restoring changed the state file %s: sha256 %s before, %s after", name, want, got)
			}
		}
		if got := dirEntries(t, state); len(got) != len(stateDigests) {
			t.Errorf("restoring changed the state directory: now %v", got)
		}
	})
	step(t, "SaveRestoreInPlace", func(t *testing.T) {
		// A fork's source and a pause/resume: save a running VM (a
		// clone, itself restored) while another runs, end it, and
		// restore it onto its own disks, which nothing touched since the
		// save. After a completed save the hypervisor is only ever ended
		// (QEMU has handed the disks to the saved state).
		before := s.mark(t, d, clones[0])
		dir := filepath.Join(t.TempDir(), "fork-state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s.save(t, d, sn, clones[0], dir)
		wantStatus(t, d, clones[1], hypervisor.Running) // the other clone is untouched
		if err := d.Kill(clones[0]); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h, err := sn.Restore(ctx, cloneSpecs[0], dir)
		if err != nil {
			t.Fatalf("Restore in place: %v", err)
		}
		clones[0] = h
		if err := sn.Resume(ctx, h); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		wantStatus(t, d, h, hypervisor.Running)
		s.checkSame(t, "the VM restored in place", before, s.mark(t, d, h))
	})
	step(t, "Kill", func(t *testing.T) {
		for i, c := range clones {
			if err := d.Kill(c); err != nil {
				t.Errorf("Kill of clone %d: %v", i, err)
			}
			s.checkStopped(t, d, c, cloneSpecs[i])
		}
	})
}

// save saves h's VM into dir (empty) and checks the result: Saved.Bytes
// is positive, dir has files, the VM is Paused.
func (s *suite) save(t *testing.T, d hypervisor.Hypervisor, sn hypervisor.Snapshotter, h hypervisor.Handle, dir string) hypervisor.Saved {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	saved, err := sn.Save(ctx, h, dir)
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	files := dirEntries(t, dir)
	var size, alloc int64
	for _, name := range files {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
	}
	t.Logf("saved in %v: %+v; %s holds %v (%d bytes, %d allocated)", time.Since(start).Round(time.Millisecond), saved, dir, files, size, alloc)
	if saved.Bytes <= 0 {
		t.Errorf("Saved.Bytes = %d, want what the state takes on disk", saved.Bytes)
	}
	if len(files) == 0 || size == 0 {
		t.Errorf("Save wrote nothing into %s (files %v, %d bytes)", dir, files, size)
	}
	wantStatus(t, d, h, hypervisor.Paused)
	return saved
}

// restoreAtOnce restores one VM per spec from state, all at once, and
// makes sure each is killed when the test owner ends.
func (s *suite) restoreAtOnce(t, owner *testing.T, d hypervisor.Hypervisor, sn hypervisor.Snapshotter, specs []hypervisor.Spec, state string) []hypervisor.Handle {
	t.Helper()
	hs := make([]hypervisor.Handle, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, spec := range specs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.guest.bootTimeout())
			defer cancel()
			hs[i], errs[i] = sn.Restore(ctx, spec, state)
		})
	}
	wg.Wait()
	for i, h := range hs {
		if errs[i] != nil {
			continue
		}
		owner.Cleanup(func() {
			if err := d.Kill(h); err != nil {
				owner.Errorf("killing restored VM %d at the end of the test: %v", i, err)
			}
		})
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Restore %d of %d at once: %v", i+1, len(specs), err)
		}
	}
	t.Logf("restored %d VMs at once in %v", len(specs), time.Since(start).Round(time.Millisecond))
	for _, h := range hs {
		s.checkHandle(t, d, h)
	}
	return hs
}

// restoreFailures restores from states that cannot be restored: each
// Restore must fail with an error naming the state directory, leaving no
// process and no socket.
func (s *suite) restoreFailures(t *testing.T, sn hypervisor.Snapshotter, state string) {
	tests := []struct {
		name string
		make func(t *testing.T) string // returns the state directory
	}{
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "no-state") }},
		{"empty", func(t *testing.T) string { return t.TempDir() }},
		{"corrupt", func(t *testing.T) string {
			// Every file's first 64 KiB, inverted.
			return mangledCopy(t, state, func(dst *os.File, src *os.File, size int64) error {
				b := make([]byte, min(size, 64<<10))
				if _, err := io.ReadFull(src, b); err != nil {
					return err
				}
				for i := range b {
					b[i] ^= 0xff
				}
				_, err := dst.Write(b)
				return err
			})
		}},
		{"truncated", func(t *testing.T) string {
			// Every file's first half: a save cut short.
			return mangledCopy(t, state, func(dst *os.File, src *os.File, size int64) error {
				_, err := io.CopyN(dst, src, size/2)
				return err
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.make(t)
			spec := s.spec(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			h, err := sn.Restore(ctx, spec, dir)
			if err == nil {
				s.newDriver(t).Kill(h)
				t.Fatalf("Restore from a %s state succeeded (%+v); want an error", tt.name, h)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("the error does not name the state directory %s, so it does not say which saved state failed: %v", dir, err)
			}
			if !s.guest.InMemory {
				if h.PID > 0 && hypervisor.Alive(h) {
					t.Errorf("the failed Restore returned a handle whose process %d runs", h.PID)
				}
				for _, p := range []string{spec.Dir, dir} {
					if pids := processesMentioning(p); len(pids) > 0 {
						t.Errorf("the failed Restore left processes mentioning %s: %v", p, pids)
					}
				}
			}
			if socks := sockets(t, spec.Dir); len(socks) > 0 {
				t.Errorf("the failed Restore left sockets in %s: %v", spec.Dir, socks)
			}
		})
	}
}

// checkHandle checks what a Launch or a Restore returned.
func (s *suite) checkHandle(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle) {
	t.Helper()
	if h.Driver != d.Name() {
		t.Errorf("Handle.Driver = %q, want the driver's name %q", h.Driver, d.Name())
	}
	if h.PID <= 0 || h.ControlSocket == "" || h.ConsoleLog == "" || h.Agent == "" {
		t.Errorf("the handle lacks PID, ControlSocket, ConsoleLog or Agent: %+v", h)
	}
	if !s.guest.InMemory && !hypervisor.Alive(h) {
		t.Errorf("hypervisor.Alive(%+v) = false: the handle's PID or StartTime is wrong", h)
	}
}

// guestMark is what tells one boot of a guest from another.
type guestMark struct {
	uptimeMS int64
	bootID   string // "" without a Guest.BootIDProbe
}

// minSavedUptime is how long the suite lets the guest run before it
// saves it: well above a stand-in's time from launch to its agent's
// first answer (a real guest has run longer by the time it answers).
const minSavedUptime = time.Second

// mark asks h's guest, with the suite's agent key (the saved guest's),
// for its uptime and boot ID.
func (s *suite) mark(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle) guestMark {
	t.Helper()
	return s.markAfter(t, d, h, 0)
}

// markAfter is mark once the guest reports an uptime of at least up.
func (s *suite) markAfter(t *testing.T, d hypervisor.Hypervisor, h hypervisor.Handle, up time.Duration) guestMark {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.guest.bootTimeout())
	defer cancel()
	var m guestMark
	for {
		health, err := AgentHealth(ctx, d, h, s.key)
		if errors.Is(err, agentmux.ErrKeyRefused) {
			t.Fatalf("the guest refuses the saved guest's agent key (%v): it holds another, as a new boot of its spec would, so it is not the saved guest", err)
		}
		if err != nil {
			b, _ := os.ReadFile(h.ConsoleLog)
			t.Fatalf("no health from the agent: %v; console tail:\n%s", err, tail(b, 3000))
		}
		m.uptimeMS = health.UptimeMS
		if m.uptimeMS >= up.Milliseconds() {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the guest's uptime stays at %d ms, below %v", m.uptimeMS, up)
		case <-time.After(time.Duration(up.Milliseconds()-m.uptimeMS) * time.Millisecond):
		}
	}
	if len(s.guest.BootIDProbe) > 0 {
		out, status, err := AgentExec(ctx, d, h, s.key, s.guest.BootIDProbe)
		if err != nil || status.Code != 0 {
			t.Fatalf("running the boot ID probe %v: %v (exit %+v, output %q)", s.guest.BootIDProbe, err, status, out)
		}
		m.bootID = strings.TrimSpace(out)
		if m.bootID == "" {
			t.Fatalf("the boot ID probe %v printed nothing", s.guest.BootIDProbe)
		}
	}
	return m
}

// checkSame checks that got comes from the boot that gave want, later.
func (s *suite) checkSame(t *testing.T, what string, want, got guestMark) {
	t.Helper()
	t.Logf("%s: uptime %d ms (%d ms before), boot ID %q (%q before)", what, got.uptimeMS, want.uptimeMS, got.bootID, want.bootID)
	if got.uptimeMS < want.uptimeMS {
		t.Errorf("%s reports an uptime of %d ms, less than the %d ms the saved guest reported before it was saved: a new boot, not the saved guest", what, got.uptimeMS, want.uptimeMS)
	}
	if got.bootID != want.bootID {
		t.Errorf("%s has boot ID %q, the saved guest had %q: a new boot, not the saved guest", what, got.bootID, want.bootID)
	}
}

// freezeDir makes dir and its files read-only (restored until the test
// ends) and returns each file's SHA-256.
func freezeDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	digests := map[string]string{}
	for _, name := range dirEntries(t, dir) {
		p := filepath.Join(dir, name)
		digests[name] = fileDigest(t, p)
		if err := os.Chmod(p, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	return digests
}

// mangledCopy copies every file of dir into a new directory through
// mangle, which writes dst from src (of size bytes).
func mangledCopy(t *testing.T, dir string, mangle func(dst, src *os.File, size int64) error) string {
	t.Helper()
	out := t.TempDir()
	for _, name := range dirEntries(t, dir) {
		err := func() error {
			src, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			defer src.Close()
			fi, err := src.Stat()
			if err != nil {
				return err
			}
			dst, err := os.Create(filepath.Join(out, name))
			if err != nil {
				return err
			}
			if err := mangle(dst, src, fi.Size()); err != nil {
				dst.Close()
				return err
			}
			return dst.Close()
		}()
		if err != nil {
			t.Fatalf("copying the state file %s: %v", name, err)
		}
	}
	return out
}

// sockets lists what in dir is a socket, or named like one (the Fake's
// placeholders are empty files named *.sock).
func sockets(t *testing.T, dir string) []string {
	t.Helper()
	var socks []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type()&fs.ModeSocket != 0 || strings.HasSuffix(e.Name(), ".sock") {
			socks = append(socks, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return socks
}
