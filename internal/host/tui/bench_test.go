package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// TestNoRequestPerVM: with many VMs the TUI lists each kind once, follows
// one event stream, and asks for every VM's figures in one GET /v1/stats
// per refresh; no request names a VM, while the table shows them all and
// a change made elsewhere still arrives.
func TestNoRequestPerVM(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	vms := daemontest.CreateVMs(t, d, 30)
	p := startCountingProxy(t, d.Config.Paths.Socket())
	opts := proxiedOptions(d, p)
	opts.StatsEvery = 20 * time.Millisecond
	h := newHarness(t, opts)
	h.waitFor("30 VMs in the store", func(string) bool { return len(h.app.Store().VMs()) == 30 })
	h.waitFor("3 stats refreshes", func(string) bool { return p.Counts()["GET /v1/stats"] >= 3 })
	h.waitFor("CPU figures in the store", func(string) bool { return len(h.app.Store().Stats(vms[0].Name)) > 0 })
	if _, err := d.Client.StopVM(context.Background(), vms[0].Name); err != nil {
		t.Fatal(err)
	}
	h.waitFor(vms[0].Name+" stopped", func(string) bool {
		v, _ := h.app.Store().VM(vms[0].Name)
		return v.State == api.VMStopped
	})
	counts := p.Counts()
	t.Logf("requests with 30 VMs:\n%s", p)
	for _, once := range []string{"GET /v1/vms", "GET /v1/images", "GET /v1/operations", "GET /v1/events"} {
		if counts[once] != 1 {
			t.Errorf("%s: %d requests, want 1", once, counts[once])
		}
	}
	for k := range counts {
		if strings.Contains(k, "{name}") || strings.Contains(k, "{id}") {
			t.Errorf("a request per VM or operation: %s", k)
		}
	}
}

// BenchmarkStart200VMs is the time from a new TUI to its table drawn with
// 200 VMs listed from a fake bangerd, and the requests that took.
func BenchmarkStart200VMs(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	daemontest.CreateVMs(b, d, 200)
	p := startCountingProxy(b, d.Config.Paths.Socket())
	b.ResetTimer()
	for range b.N {
		h := newHarness(b, proxiedOptions(d, p))
		h.waitFor("200 VMs drawn", func(s string) bool {
			return len(h.app.Store().VMs()) == 200 && strings.Contains(s, ">")
		})
		h.app.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(p.Total())/float64(b.N), "requests/op")
	b.Logf("requests over %d starts:\n%s", b.N, p)
}

// BenchmarkEvent200VMs is the cost of one VM event with 200 VMs: the
// Store applies it and the views get it (update), and then the screen is
// drawn again (update+render, what a frame costs).
func BenchmarkEvent200VMs(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	vms := daemontest.CreateVMs(b, d, 200)
	h := newHarness(b, fakeOptions(d))
	h.waitFor("200 VMs", func(string) bool { return len(h.app.Store().VMs()) == 200 })
	h.settle()
	event := func(i int) EventMsg {
		v := vms[i%len(vms)]
		v.State = []string{api.VMStopped, api.VMRunning}[i%2]
		return EventMsg(api.Event{Kind: api.EventVM, Name: v.Name, VMState: &v})
	}
	b.Run("update", func(b *testing.B) {
		for i := range b.N {
			h.app.Update(event(i))
		}
	})
	b.Run("update+render", func(b *testing.B) {
		for i := range b.N {
			h.app.Update(event(i))
			if s := h.app.Screen(); len(s) == 0 {
				b.Fatal("empty screen")
			}
		}
	})
}
