package store

import (
	"context"
	"errors"
	"testing"
)

// Published ports are recorded per VM and guest port, a host port is held
// by one row, and a VM's rows go with it (ON DELETE CASCADE).
func TestPublishedPorts(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if err := s.CreateImage(ctx, Image{ID: "img1", Name: "base", State: "ready"}); err != nil {
		t.Fatal(err)
	}
	for _, vm := range []VM{{ID: "vm1", Name: "a", ImageID: "img1", State: "running"}, {ID: "vm2", Name: "b", ImageID: "img1", State: "running"}} {
		if err := s.CreateVM(ctx, vm); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []PublishedPort{{"vm1", 8080, 18080}, {"vm1", 4096, 14096}, {"vm2", 4096, 24096}} {
		if err := s.AddPort(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		p    PublishedPort
	}{
		{"a guest port twice", PublishedPort{"vm1", 8080, 18081}},
		{"a host port twice", PublishedPort{"vm2", 22, 18080}},
		{"an unknown VM", PublishedPort{"nope", 22, 30000}},
	}
	for _, tt := range tests {
		if err := s.AddPort(ctx, tt.p); !errors.Is(err, ErrConflict) {
			t.Errorf("%s: AddPort = %v, want ErrConflict", tt.name, err)
		}
	}
	got, err := s.Ports(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].GuestPort != 4096 || got[1].HostPort != 18080 {
		t.Fatalf("vm1's ports = %+v, want 4096 then 8080", got)
	}
	if err := s.RemovePort(ctx, "vm1", 4096); err != nil {
		t.Fatal(err)
	}
	if err := s.RemovePort(ctx, "vm1", 4096); !errors.Is(err, ErrNotFound) {
		t.Errorf("second RemovePort = %v, want ErrNotFound", err)
	}
	if err := s.DeleteVM(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	all, err := s.Ports(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].VMID != "vm2" {
		t.Fatalf("after deleting vm1, ports = %+v, want only vm2's", all)
	}
}
