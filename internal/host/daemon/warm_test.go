package daemon_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// followOp follows an operation to its end.
func followOp(t *testing.T, d *daemontest.Daemon, op api.Operation) api.Operation {
	t.Helper()
	op, err := d.Client.WatchOperation(context.Background(), op.ID, func(api.OperationEvent) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// With vm.auto_warm, the first cold create of an image warms it for that
// shape in the background (one image.warm operation), and the next
// create restores; unwarm announces the image without its snapshots.
func TestAutoWarm(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true, AutoWarm: true})
	ctx := context.Background()
	op, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if op = followOp(t, d, op); op.State != api.OperationSucceeded {
		t.Fatalf("create: %+v", op.Error)
	}
	var warm api.Operation
	deadline := time.Now().Add(30 * time.Second)
	for warm.ID == "" && time.Now().Before(deadline) {
		ops, err := d.Client.Operations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range ops {
			if o.Kind == "image.warm" {
				warm = o
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if warm.ID == "" {
		t.Fatal("no image.warm operation began after the first cold create")
	}
	if warm = followOp(t, d, warm); warm.State != api.OperationSucceeded {
		t.Fatalf("auto warm: %+v", warm.Error)
	}
	img, err := d.Client.Image(ctx, daemontest.FakeImage)
	if err != nil || len(img.Warm) != 1 {
		t.Fatalf("image after auto warm: %+v %v", img.Warm, err)
	}
	op, err = d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	op = followOp(t, d, op)
	var names []string
	for _, s := range op.Stages {
		names = append(names, s.Name)
	}
	if !slices.Contains(names, "restore fake") || slices.Contains(names, "agent health") {
		t.Errorf("the create after auto warm ran %v", names)
	}
	// One warm per image and shape.
	ops, _ := d.Client.Operations(ctx)
	n := 0
	for _, o := range ops {
		if o.Kind == "image.warm" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d image.warm operations, want 1", n)
	}
	if img, err := d.Client.UnwarmImage(ctx, daemontest.FakeImage); err != nil || len(img.Warm) != 0 {
		t.Errorf("unwarm: %+v %v", img.Warm, err)
	}
}
