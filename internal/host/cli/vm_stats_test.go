package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
)

func statsFixture() []api.VMStats {
	total, used := int64(2<<30), int64(300<<20)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []api.VMStats{
		{VM: "demo", Time: at, CPUPercent: 37.25, HostRSSBytes: 612 << 20, GuestMemTotalBytes: &total, GuestMemUsedBytes: &used,
			Disks:      []api.DiskStats{{Name: "rootfs", SizeBytes: 4 << 30, UsedBytes: 1 << 30}, {Name: "work", SizeBytes: 8 << 30, UsedBytes: 512 << 20}},
			NetRxBytes: 1536, NetTxBytes: 3 << 20},
		{VM: "quiet-otter", Time: at, CPUPercent: -1, Disks: []api.DiskStats{}},
	}
}

// The table: one row per VM, sizes in binary units, what is not known
// shown as "-".
func TestVMStatsTable(t *testing.T) {
	d := startFakeDaemon(t)
	d.Mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.StatsList{Stats: statsFixture()})
	})
	d.Mux.HandleFunc("GET /v1/vms/{name}/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "demo" {
			writeAPIError(w, http.StatusPreconditionFailed, *api.Errorf(api.CodeFailedPrecondition, "VM %s is stopped: start it with `banger vm start %s`", r.PathValue("name"), r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, statsFixture()[0])
	})
	const table = `NAME         CPU%  HOST-RSS  GUEST-MEM        DISK            NET-RX  NET-TX
demo         37.2  612.0MiB  300.0MiB/2.0GiB  1.5GiB/12.0GiB  1.5KiB  3.0MiB
quiet-otter  -     0B        -                -               0B      0B
`
	const one = `NAME  CPU%  HOST-RSS  GUEST-MEM        DISK            NET-RX  NET-TX
demo  37.2  612.0MiB  300.0MiB/2.0GiB  1.5GiB/12.0GiB  1.5KiB  3.0MiB
`
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantErr    string
		wantCode   int
		jsonDecode any
	}{
		{name: "all", args: []string{"vm", "stats"}, wantOut: table},
		{name: "one", args: []string{"vm", "stats", "demo"}, wantOut: one},
		{name: "stopped", args: []string{"vm", "stats", "idle"}, wantCode: ExitError, wantErr: "VM idle is stopped: start it with `banger vm start idle`"},
		{name: "json all", args: []string{"vm", "stats", "--json"}, jsonDecode: &api.StatsList{}},
		{name: "json one", args: []string{"vm", "stats", "demo", "--json"}, jsonDecode: &api.VMStats{}},
		{name: "interval too short", args: []string{"vm", "stats", "--watch", "--interval", "10ms"}, wantCode: ExitUsage, wantErr: "--interval 10ms is too short"},
		{name: "two names", args: []string{"vm", "stats", "a", "b"}, wantCode: ExitUsage, wantErr: "at most one vm name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := d.run(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
			if tt.jsonDecode != nil {
				if err := json.Unmarshal([]byte(out), tt.jsonDecode); err != nil {
					t.Fatalf("--json printed %q: %v", out, err)
				}
				var want any = &api.StatsList{Stats: statsFixture()}
				if _, one := tt.jsonDecode.(*api.VMStats); one {
					s := statsFixture()[0]
					want = &s
				}
				wb, _ := json.Marshal(want)
				gb, _ := json.Marshal(tt.jsonDecode)
				if string(wb) != string(gb) {
					t.Errorf("--json = %s, want %s", gb, wb)
				}
				return
			}
			if tt.wantOut != "" && out != tt.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tt.wantOut)
			}
		})
	}
}

// --watch makes one request for all VMs per refresh, never one per VM,
// and Ctrl-C (the context ending) is a normal end.
func TestVMStatsWatch(t *testing.T) {
	d := startFakeDaemon(t)
	var (
		mu     sync.Mutex
		seen   []string
		cancel context.CancelFunc
	)
	d.Mux.HandleFunc("GET /v1/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		if len(seen) == 3 {
			cancel()
		}
		mu.Unlock()
		writeJSON(w, http.StatusOK, api.StatsList{Stats: statsFixture()})
	})
	for _, asJSON := range []bool{false, true} {
		ctx, stop := context.WithCancel(context.Background())
		mu.Lock()
		seen, cancel = nil, stop
		mu.Unlock()
		args := []string{"vm", "stats", "--watch", "--interval", "500ms"}
		if asJSON {
			args = append(args, "--json")
		}
		var out, errb bytes.Buffer
		app := &App{Stdout: &out, Stderr: &errb, Env: config.MapEnv(d.Env), UID: os.Getuid(), DaemonBin: fakeDaemonBin}
		if code := Run(ctx, args, app); code != ExitOK {
			t.Fatalf("json %v: exit %d: %s", asJSON, code, errb.String())
		}
		stop()
		mu.Lock()
		for _, p := range seen {
			if p != "/v1/stats" {
				t.Errorf("json %v: asked %s; want only /v1/stats", asJSON, p)
			}
		}
		mu.Unlock()
		if asJSON {
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) < 2 {
				t.Fatalf("--watch --json printed %d lines, want one a refresh:\n%s", len(lines), out.String())
			}
			for _, l := range lines {
				var sl api.StatsList
				if err := json.Unmarshal([]byte(l), &sl); err != nil || len(sl.Stats) != 2 {
					t.Errorf("line %q: %v", l, err)
				}
			}
		} else if n := strings.Count(out.String(), "NAME "); n < 2 {
			t.Errorf("--watch printed %d tables, want one a refresh:\n%s", n, out.String())
		}
	}
}
