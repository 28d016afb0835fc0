package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
)

// TestSnapshotRendering: what the list and show commands print about
// paused VMs, forks, warm VMs, warm images and forked sessions, from a
// daemon's answers (the fake daemon: the goldens of TestCommandsSnapshots
// show the real daemon's).
func TestSnapshotRendering(t *testing.T) {
	d := startFakeDaemon(t)
	now := time.Now()
	paused := api.VM{Name: "demo", State: api.VMPaused, StateBytes: 1<<30 + 1<<20, VCPUs: 2, MemoryMiB: 1024, Hypervisor: "qemu", CreatedAt: now}
	fork := api.VM{Name: "twin", State: api.VMRunning, ForkedFrom: "demo", Warm: true, VCPUs: 2, MemoryMiB: 1024, Hypervisor: "qemu", Accel: "tcg", CreatedAt: now}
	warm := api.Image{Name: "agents", State: api.ImageReady, CreatedAt: now, Warm: []api.WarmSnapshot{
		{Hypervisor: "qemu", Accel: "tcg", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30, Bytes: 300 << 20, CreatedAt: now.Add(-2 * time.Hour)},
	}}
	cold := api.Image{Name: "plain", State: api.ImageReady, CreatedAt: now}
	d.Mux.HandleFunc("GET /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.VMList{VMs: []api.VM{paused, fork}})
	})
	d.Mux.HandleFunc("GET /v1/vms/demo", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, paused) })
	d.Mux.HandleFunc("GET /v1/vms/twin", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, fork) })
	d.Mux.HandleFunc("GET /v1/images", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.ImageList{Images: []api.Image{warm, cold}})
	})
	d.Mux.HandleFunc("GET /v1/images/agents", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, warm) })
	d.Mux.HandleFunc("GET /v1/images/plain", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, cold) })
	d.Mux.HandleFunc("GET /v1/vms/twin/sessions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.SessionList{Sessions: []api.Session{
			{ID: "sess-1", Name: "work", State: api.SessionRunning, ForkedFrom: "demo", Argv: []string{"sleep", "1"}, StartedAt: now},
			{ID: "sess-2", Name: "own", State: api.SessionRunning, Argv: []string{"true"}, StartedAt: now},
		}})
	})
	d.Mux.HandleFunc("POST /v1/images/agents/warm", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusBadRequest, api.Error{Code: api.CodeInvalidArgument, Field: "memory_mib",
			Message: "memory_mib 64 is below the image's minimum: use 128MiB or more"})
	})
	tests := []struct {
		name    string
		args    []string
		want    []string // lines (after collapsing runs of spaces) stdout must hold
		notWant []string
		stderr  string
	}{
		{"vm list shows paused with the state's size", []string{"vm", "list"},
			[]string{"demo paused (1.1GiB) -", "twin running -"}, nil, ""},
		{"vm show of a paused VM", []string{"vm", "show", "demo"},
			[]string{"state paused", "saved state 1.1GiB on disk (`banger vm resume demo` restores it)"}, []string{"forked from", "warm"}, ""},
		{"vm show of a warm fork", []string{"vm", "show", "twin"},
			[]string{"forked from demo", "warm yes: restored from its image's warm snapshot"}, []string{"saved state"}, ""},
		{"image list marks warm images", []string{"image", "list"},
			[]string{"agents ready (warm)", "plain ready -"}, nil, ""},
		{"image show lists warm snapshots", []string{"image", "show", "agents"},
			[]string{"WARM VCPUS MEMORY DISK SIZE CREATED", "qemu/tcg 2 1.0GiB 8.0GiB 300MiB 2h ago"}, nil, ""},
		{"image show without warm snapshots", []string{"image", "show", "plain"},
			nil, []string{"WARM"}, ""},
		{"session list marks forked sessions", []string{"vm", "session", "list", "twin"},
			[]string{"sess-1 work running, forked from demo", "sess-2 own running 0"}, nil, ""},
		{"image warm names the flag at fault", []string{"image", "warm", "agents", "--memory", "64MiB"},
			nil, nil, "banger: --memory 64 is below the image's minimum: use 128MiB or more\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, _ := d.run(t, tt.args...)
			if errOut != tt.stderr {
				t.Errorf("stderr %q, want %q", errOut, tt.stderr)
			}
			var lines []string
			for _, l := range strings.Split(out, "\n") {
				lines = append(lines, strings.Join(strings.Fields(l), " "))
			}
			text := strings.Join(lines, "\n")
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(text, w) {
					t.Errorf("stdout has %q:\n%s", w, out)
				}
			}
		})
	}
}
