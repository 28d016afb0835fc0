package daemon_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// The stats endpoints of a real daemon with the fake hypervisor: every
// running VM in one answer, with its two disk files and its guest's own
// memory; a stopped VM refused with the fix and left out of the list; a
// crashed VM's guest figures unknown, not an error. A fake VM has no
// process (CPU unknown, no RSS) and its TAP is not a device (no
// traffic): those figures are tested against real processes and devices
// in package vmstats.
func TestStatsEndpoints(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		d.CreateVM(t, api.CreateVMRequest{Name: name, MemoryMiB: 512})
	}
	if _, err := d.Client.StopVM(ctx, "charlie"); err != nil {
		t.Fatal(err)
	}

	all, err := d.Client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all {
		names = append(names, s.VM)
		if s.CPUPercent != -1 || s.HostRSSBytes != 0 {
			t.Errorf("%s: CPU %g%%, RSS %d; a fake VM has no process, want -1 and 0", s.VM, s.CPUPercent, s.HostRSSBytes)
		}
		if len(s.Disks) != 2 || s.Disks[0].Name != "rootfs" || s.Disks[1].Name != "work" ||
			s.Disks[0].SizeBytes <= 0 || s.Disks[1].SizeBytes != 1<<30 || s.Disks[1].UsedBytes <= 0 {
			t.Errorf("%s: disks %+v, want rootfs and the 1GiB work disk", s.VM, s.Disks)
		}
		if total, used := s.GuestMemTotalBytes, s.GuestMemUsedBytes; total == nil || used == nil || *total != 512<<20 || *used != 128<<20 {
			t.Errorf("%s: guest memory %v/%v, want the fake guest's 128MiB of 512MiB", s.VM, used, total)
		}
		if s.Time.IsZero() {
			t.Errorf("%s: no time", s.VM)
		}
	}
	if strings.Join(names, " ") != "alpha bravo" {
		t.Errorf("GET /v1/stats lists %v, want the running alpha and bravo", names)
	}

	tests := []struct {
		name    string
		want    error
		wantMsg string
	}{
		{"charlie", api.ErrFailedPrecondition, "VM charlie is stopped: start it with `banger vm start charlie`"},
		{"nobody", api.ErrNotFound, "no vm named \"nobody\""},
	}
	for _, tt := range tests {
		_, err := d.Client.VMStats(ctx, tt.name)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("stats of %s: %v, want %v saying %q", tt.name, err, tt.want, tt.wantMsg)
		}
	}

	// bravo's hypervisor dies behind the daemon's back: the store still
	// says running, its guest cannot answer.
	b, err := d.Client.VM(ctx, "bravo")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range d.Fake.Running() {
		if h.PID == b.PID {
			d.Fake.Crash(h)
		}
	}
	s, err := d.Client.VMStats(ctx, "bravo")
	if err != nil {
		t.Fatalf("stats of a crashed VM: %v, want figures with the guest's unknown", err)
	}
	if s.GuestMemTotalBytes != nil || len(s.Disks) != 2 {
		t.Errorf("crashed VM: guest memory %v, disks %+v; want unknown and both disks", s.GuestMemTotalBytes, s.Disks)
	}
	a, err := d.Client.VMStats(ctx, "alpha")
	if err != nil || a.VM != "alpha" || a.GuestMemTotalBytes == nil {
		t.Errorf("alpha after bravo crashed: %+v, %v", a, err)
	}
}

// With no VM running, GET /v1/stats is an empty list, not null.
func TestStatsEmpty(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	resp, err := rawClient(d).Get("http://bangerd/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"stats":[]}` {
		t.Errorf("GET /v1/stats = %d %s, want 200 {\"stats\":[]}", resp.StatusCode, body)
	}
}

// BenchmarkStats200 is one GET /v1/stats over 200 running fake VMs: the
// front end's one request per refresh (each VM's disks and its guest's
// memory, over its agent session, sampled concurrently).
func BenchmarkStats200(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	daemontest.CreateVMs(b, d, 200)
	ctx := context.Background()
	for b.Loop() {
		all, err := d.Client.Stats(ctx)
		if err != nil || len(all) != 200 {
			b.Fatalf("%d stats, %v", len(all), err)
		}
		for _, s := range all {
			if s.GuestMemTotalBytes == nil {
				b.Fatalf("%s: guest memory unknown", s.VM)
			}
		}
	}
}
