package tui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"
)

// offlineApp is an App that never reaches a daemon: its tests feed it
// messages by hand.
func offlineApp() *App {
	a := New(Options{
		Connect:    func(context.Context) (*client.Client, error) { return nil, errors.New("offline") },
		NoColor:    true,
		Format:     testFormat,
		StatsEvery: -1,
	})
	return a
}

func vmEvent(name, state string) api.Event {
	return api.Event{Kind: api.EventVM, Name: name, VMState: &api.VM{Name: name, State: state}}
}

// Events that arrive while the lists are on their way are applied over
// them, in order: the newest state wins whichever came first.
func TestEventsDuringReloadWin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		list   []api.VM
		events []api.Event
		want   map[string]string
	}{
		{
			name:   "an event newer than the list",
			list:   []api.VM{{Name: "a", State: api.VMRunning}},
			events: []api.Event{vmEvent("a", api.VMStopped)},
			want:   map[string]string{"a": api.VMStopped},
		},
		{
			name:   "an event the list already had, then a newer one",
			list:   []api.VM{{Name: "a", State: api.VMCreating}},
			events: []api.Event{vmEvent("a", api.VMCreating), vmEvent("a", api.VMRunning)},
			want:   map[string]string{"a": api.VMRunning},
		},
		{
			name:   "a removal the list did not see yet",
			list:   []api.VM{{Name: "a", State: api.VMRunning}, {Name: "b", State: api.VMRunning}},
			events: []api.Event{{Kind: api.EventVM, Name: "b", Removed: true}},
			want:   map[string]string{"a": api.VMRunning},
		},
		{
			name:   "a VM created after the list",
			list:   nil,
			events: []api.Event{vmEvent("new", api.VMCreating)},
			want:   map[string]string{"new": api.VMCreating},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := offlineApp()
			defer a.Close()
			a.reload() // the lists are on their way (not run: offline)
			for _, ev := range tc.events {
				a.update(EventMsg(ev))
			}
			if n := len(a.Store().VMs()); n != 0 {
				t.Fatalf("events were applied before the lists came: %d VMs", n)
			}
			a.update(reloadedMsg{vms: tc.list})
			got := map[string]string{}
			for _, v := range a.Store().VMs() {
				got[v.Name] = v.State
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("store after the lists (-want +got):\n%s", diff)
			}
			// Once the lists are in, events apply at once.
			a.update(EventMsg(vmEvent("late", api.VMRunning)))
			if _, ok := a.Store().VM("late"); !ok {
				t.Error("an event after the lists was not applied")
			}
		})
	}
}

// The CPU column draws a running VM's recent samples from GET /v1/stats
// as a sparkline; the detail shows the figures.
func TestStatsRendering(t *testing.T) {
	a := offlineApp()
	defer a.Close()
	a.update(reloadedMsg{vms: []api.VM{
		{Name: "busy", State: api.VMRunning, Image: "base", IP: "10.0.0.2", VCPUs: 2, MemoryMiB: 2048, Hypervisor: "qemu", Accel: "tcg"},
		{Name: "idle", State: api.VMStopped, Image: "base", VCPUs: 1, MemoryMiB: 512, Hypervisor: "qemu"},
	}})
	used, total := int64(256<<20), int64(1<<30)
	for _, cpu := range []float64{0, 20, 45, 70, 100, 150} {
		a.update(statsMsg{stats: []api.VMStats{{
			VM: "busy", Time: time.Unix(0, 0), CPUPercent: cpu, HostRSSBytes: 300 << 20,
			GuestMemUsedBytes: &used, GuestMemTotalBytes: &total,
			Disks:      []api.DiskStats{{Name: "rootfs", SizeBytes: 8 << 30, UsedBytes: 1 << 30}},
			NetRxBytes: 2048, NetTxBytes: 1024,
		}}})
	}
	screen := ansi.Strip(a.Screen())
	if !strings.Contains(screen, "▁▂▄▅██") {
		t.Errorf("no sparkline for busy:\n%s", screen)
	}
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, " idle ") && strings.ContainsAny(l, "▁▂▃▄▅▆▇█") {
			t.Errorf("a stopped VM has a sparkline: %q", l)
		}
	}
	a.update(keyMsg("enter"))
	detail := ansi.Strip(a.Screen())
	for _, want := range []string{"cpu 5%", "host rss 300.0 MiB", "guest mem 256.0 MiB of 1.0 GiB", "rx 2.0 KiB tx 1.0 KiB", "rootfs 1.0 GiB of 8.0 GiB", "qemu/tcg"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the detail lacks %q:\n%s", want, detail)
		}
	}
}

// ? opens every key in columns and closes again; the screen keeps its
// size either way.
func TestFullHelp(t *testing.T) {
	a := offlineApp()
	defer a.Close()
	a.update(reloadedMsg{vms: []api.VM{{Name: "one", State: api.VMRunning}}})
	short := ansi.Strip(a.Screen())
	a.update(keyMsg("?"))
	full := ansi.Strip(a.Screen())
	if len(strings.Split(full, "\n")) != 24 {
		t.Fatalf("full help: %d lines, want 24", len(strings.Split(full, "\n")))
	}
	for _, want := range []string{"create", "console", "filter", "quit", "next tab"} {
		if !strings.Contains(full, want) {
			t.Errorf("full help lacks %q:\n%s", want, full)
		}
	}
	a.update(keyMsg("?"))
	if got := ansi.Strip(a.Screen()); got != short {
		t.Errorf("? twice did not give back the short help:\n%s", got)
	}
}

// The Store's sorted VMs follow every kind of VM event: a change in
// place, a new VM in its place by name, a removal.
func TestStoreVMsStaySorted(t *testing.T) {
	s := NewStore()
	s.SetVMs([]api.VM{{Name: "c", State: api.VMRunning}, {Name: "a", State: api.VMRunning}})
	names := func() string {
		var out []string
		for _, v := range s.VMs() {
			out = append(out, v.Name+"="+v.State)
		}
		return strings.Join(out, " ")
	}
	steps := []struct {
		ev   api.Event
		want string
	}{
		{vmEvent("a", api.VMStopped), "a=stopped c=running"},
		{vmEvent("b", api.VMCreating), "a=stopped b=creating c=running"},
		{vmEvent("b", api.VMRunning), "a=stopped b=running c=running"},
		{api.Event{Kind: api.EventVM, Name: "a", Removed: true}, "b=running c=running"},
		{vmEvent("0", api.VMCreating), "0=creating b=running c=running"},
	}
	if got := names(); got != "a=running c=running" {
		t.Fatalf("after the list: %s", got)
	}
	for _, st := range steps {
		s.Apply(st.ev)
		if got := names(); got != st.want {
			t.Errorf("after %s %s: %s, want %s", st.ev.Name, stateOf(st.ev), got, st.want)
		}
	}
}

func stateOf(ev api.Event) string {
	if ev.Removed {
		return "removed"
	}
	return ev.VMState.State
}

// The SES column: "-" until anything is known, "N+" when only the event
// feed named sessions, N once the VM's sessions were listed.
func TestSessionCount(t *testing.T) {
	a := offlineApp()
	defer a.Close()
	a.update(reloadedMsg{vms: []api.VM{{Name: "box", State: api.VMRunning, Sessions: 2}}})
	row := func() string {
		for _, l := range strings.Split(ansi.Strip(a.Screen()), "\n") {
			if strings.HasPrefix(l, ">box") {
				return strings.Fields(l)[len(strings.Fields(l))-2]
			}
		}
		t.Fatalf("no row for box:\n%s", ansi.Strip(a.Screen()))
		return ""
	}
	if got := row(); got != "2" {
		t.Errorf("listed with 2 running sessions: SES %q, want 2", got)
	}
	// The daemon says the VM again when one of its sessions changes.
	a.update(EventMsg(api.Event{Kind: api.EventVM, ID: "box", Name: "box",
		VMState: &api.VM{Name: "box", State: api.VMRunning, Sessions: 1}}))
	if got := row(); got != "1" {
		t.Errorf("after a vm event: SES %q, want 1", got)
	}
	a.update(EventMsg(api.Event{Kind: api.EventVM, ID: "box", Name: "box",
		VMState: &api.VM{Name: "box", State: api.VMStopped}}))
	if got := row(); got != "-" {
		t.Errorf("stopped: SES %q, want -", got)
	}
}
