package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

func TestNotRunning(t *testing.T) {
	c := client.New(daemontest.ShortTempDir(t) + "/bangerd.sock")
	_, err := c.DaemonStatus(context.Background())
	if !client.IsNotRunning(err) {
		t.Fatalf("got %v, want a not-running error", err)
	}
}

func TestTypedErrorsSurviveTheSocket(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	_, err := d.Client.Operation(context.Background(), "op-0000")
	var ae *api.Error
	if !errors.As(err, &ae) || !errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInternal) {
		t.Fatalf("got %#v, want *api.Error with code not_found", err)
	}
}

// BenchmarkDaemonStatusRoundTrip measures one API call through the client:
// HTTP over the unix socket, peer-credential check, JSON both ways.
func BenchmarkDaemonStatusRoundTrip(b *testing.B) {
	d := daemontest.Start(b, daemontest.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Client.DaemonStatus(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
