package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

// The stats calls ask the right endpoints (the name escaped) and decode
// the answer, guest memory left nil when the daemon omitted it; a refusal
// comes back as the typed error.
func TestStatsCalls(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	total := int64(1 << 30)
	used := int64(1 << 28)
	one := api.VMStats{VM: "a/b", Time: at, CPUPercent: 12.5, HostRSSBytes: 300 << 20,
		GuestMemTotalBytes: &total, GuestMemUsedBytes: &used,
		Disks:      []api.DiskStats{{Name: "rootfs", SizeBytes: 4 << 30, UsedBytes: 1 << 30}},
		NetRxBytes: 10, NetTxBytes: 20}
	unknown := api.VMStats{VM: "c", Time: at, CPUPercent: -1, Disks: []api.DiskStats{}}

	f, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/v1/vms/a%2Fb/stats":
			json.NewEncoder(w).Encode(one)
		case "/v1/stats":
			json.NewEncoder(w).Encode(api.StatsList{Stats: []api.VMStats{one, unknown}})
		default:
			w.WriteHeader(http.StatusPreconditionFailed)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Errorf(api.CodeFailedPrecondition, "VM x is stopped")})
		}
	})
	got, err := c.VMStats(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(one, got); diff != "" {
		t.Errorf("VMStats (-want +got):\n%s", diff)
	}
	all, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]api.VMStats{one, unknown}, all); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if all[1].GuestMemTotalBytes != nil {
		t.Error("omitted guest memory decoded as a value")
	}
	if _, err := c.VMStats(ctx, "x"); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("stopped VM: %v, want failed precondition", err)
	}
	want := []request{{Method: "GET", URI: "/v1/vms/a%2Fb/stats"}, {Method: "GET", URI: "/v1/stats"}, {Method: "GET", URI: "/v1/vms/x/stats"}}
	if diff := cmp.Diff(want, f.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
