package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/ext4img"
)

// feed reads GET /v1/events in the background.
type feed struct {
	evs    chan api.Event
	done   chan error
	cancel context.CancelFunc
}

// follow opens the event stream (resuming after since of epoch unless
// both are zero) and keeps every event until the test ends.
func follow(t *testing.T, c *client.Client, since uint64, epoch string) *feed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{evs: make(chan api.Event, 100000), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- c.Events(ctx, since, epoch, func(ev api.Event) error {
			f.evs <- ev
			return nil
		})
	}()
	t.Cleanup(cancel)
	return f
}

// next returns the next event, failing the test when none comes.
func (f *feed) next(t *testing.T) api.Event {
	t.Helper()
	select {
	case ev := <-f.evs:
		return ev
	case err := <-f.done:
		t.Fatalf("the event stream ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return api.Event{}
}

// until reads events up to and including the first that matches.
func (f *feed) until(t *testing.T, match func(api.Event) bool) []api.Event {
	t.Helper()
	var out []api.Event
	for {
		ev := f.next(t)
		out = append(out, ev)
		if match(ev) {
			return out
		}
	}
}

// end waits for the stream to end and returns why.
func (f *feed) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the event stream did not end within 30s")
		return nil
	}
}

// opDone matches the event of operation id's end.
func opDone(id string) func(api.Event) bool {
	return func(ev api.Event) bool {
		return ev.Kind == api.EventOperation && ev.ID == id && ev.OperationState.State.Terminal()
	}
}

// checkNumbered: events follow seq after, one by one, in epoch.
func checkNumbered(t *testing.T, evs []api.Event, after uint64, epoch string) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != after+uint64(i)+1 || ev.Epoch != epoch {
			t.Fatalf("event %d (%s %s) is seq %d of epoch %q, want seq %d of %q", i, ev.Kind, ev.Name, ev.Seq, ev.Epoch, after+uint64(i)+1, epoch)
		}
	}
}

// artifacts makes what a linked image registration needs: an x86-64 ELF
// for the kernel, a cpio-looking initrd and a 64 MiB ext4 rootfs; and a
// stand-in banger-agent that only reports its version, for the daemon.
func artifacts(t *testing.T) (api.RegisterImageRequest, daemontest.Options) {
	t.Helper()
	for _, b := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install e2fsprogs)", b)
		}
	}
	kernel, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no `true` binary to stand in for an ELF kernel")
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(initrd, []byte("070701 a cpio archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "root"), 0o700)
	rootfs := filepath.Join(dir, "rootfs.ext4")
	if err := ext4img.New().MakeFromDir(context.Background(), rootfs, tree, "root", 64<<20); err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(dir, "banger-agent")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\necho '{\"version\":\"t\",\"build_id\":\"agent1\"}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return api.RegisterImageRequest{Kernel: kernel, Initrd: initrd, Rootfs: rootfs, Link: true}, daemontest.Options{AgentBin: agent}
}

// register registers a linked image and waits for its operation.
func register(t *testing.T, c *client.Client, req api.RegisterImageRequest, name string) api.Operation {
	t.Helper()
	req.Name = name
	op, err := c.BeginRegisterImage(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.WatchOperation(context.Background(), op.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.OperationSucceeded {
		t.Fatalf("registering %s: %s (%v)", name, final.State, final.Error)
	}
	return final
}

// storeTimes compares what the store keeps (to the millisecond) with the
// same state read back live.
var storeTimes = cmpopts.EquateApproxTime(time.Millisecond)

// TestEventsFollowImagesAndOperations: registering an image streams the
// operation's begin, stages and end and the new image, as GET shows
// them; removing it streams its removal; every event is numbered one
// after the other in the hello's epoch.
func TestEventsFollowImagesAndOperations(t *testing.T) {
	req, opts := artifacts(t)
	d := daemontest.Start(t, opts)
	ctx := context.Background()
	f := follow(t, d.Client, 0, "")
	hello := f.next(t)
	if hello.Kind != api.EventHello || hello.Epoch == "" {
		t.Fatalf("first line %+v, want a hello with the epoch", hello)
	}

	op := register(t, d.Client, req, "evimg")
	evs := f.until(t, opDone(op.ID))
	checkNumbered(t, evs, hello.Seq, hello.Epoch)
	var stages []string
	var image *api.Image
	for _, ev := range evs {
		switch {
		case ev.Kind == api.EventOperation && ev.ID == op.ID:
			if s := ev.OperationState.CurrentStage; s != "" {
				stages = append(stages, s)
			}
		case ev.Kind == api.EventImage && ev.Name == "evimg":
			image = ev.ImageState
		default:
			t.Errorf("unexpected event %s %s %s", ev.Kind, ev.ID, ev.Name)
		}
	}
	if first := evs[0]; first.Kind != api.EventOperation || first.OperationState.State != api.OperationRunning || len(first.OperationState.Stages) != 0 {
		t.Errorf("first event %+v, want the operation's begin", first)
	}
	if diff := cmp.Diff([]string{"kernel", "rootfs", "work-seed", "fingerprint", "register"}, stages); diff != "" {
		t.Errorf("stages streamed (-want +got):\n%s", diff)
	}
	stored, err := d.Client.Operation(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stored, *evs[len(evs)-1].OperationState, storeTimes); diff != "" {
		t.Errorf("the operation's last event is not the stored operation (-stored +event):\n%s", diff)
	}
	got, err := d.Client.Image(ctx, "evimg")
	if err != nil {
		t.Fatal(err)
	}
	if image == nil {
		t.Fatal("no image event for evimg")
	}
	if diff := cmp.Diff(got, *image, storeTimes); diff != "" {
		t.Errorf("the image event is not the image as GET shows it (-get +event):\n%s", diff)
	}

	if err := d.Client.RemoveImage(ctx, "evimg", false); err != nil {
		t.Fatal(err)
	}
	ev := f.next(t)
	if ev.Kind != api.EventImage || !ev.Removed || ev.ID != got.ID || ev.Name != "evimg" || ev.ImageState != nil {
		t.Errorf("after remove: %+v, want the image's removal", ev)
	}
	checkNumbered(t, []api.Event{ev}, evs[len(evs)-1].Seq, hello.Epoch)
}

// TestEventsResume: a client that went away resumes after the last seq
// it saw and gets what it missed, then live events, with no reset.
func TestEventsResume(t *testing.T) {
	req, opts := artifacts(t)
	d := daemontest.Start(t, opts)
	first := follow(t, d.Client, 0, "")
	hello := first.next(t)
	first.cancel()
	if err := first.end(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled stream ended with %v", err)
	}

	op := register(t, d.Client, req, "missed")
	again := follow(t, d.Client, hello.Seq, hello.Epoch)
	h2 := again.next(t)
	if h2.Kind != api.EventHello || h2.Seq != hello.Seq || h2.Epoch != hello.Epoch {
		t.Fatalf("resumed hello %+v, want seq %d of %s", h2, hello.Seq, hello.Epoch)
	}
	missed := again.until(t, opDone(op.ID))
	checkNumbered(t, missed, hello.Seq, hello.Epoch)
	if missed[0].Kind == api.EventReset {
		t.Fatal("resuming inside the ring sent a reset")
	}
	if !containsEvent(missed, api.EventImage, "missed") {
		t.Errorf("the resumed stream lacks the image registered while away: %v", kinds(missed))
	}
	// And then it is live.
	if err := d.Client.RemoveImage(context.Background(), "missed", false); err != nil {
		t.Fatal(err)
	}
	if ev := again.next(t); ev.Kind != api.EventImage || !ev.Removed || ev.Seq != missed[len(missed)-1].Seq+1 {
		t.Errorf("live after the backlog: %+v, want the removal, next in seq", ev)
	}
}

func containsEvent(evs []api.Event, kind api.EventKind, name string) bool {
	for _, ev := range evs {
		if ev.Kind == kind && ev.Name == name {
			return true
		}
	}
	return false
}

func kinds(evs []api.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%d:%s:%s", ev.Seq, ev.Kind, ev.Name))
	}
	return out
}

// TestEventsResetAndRefusals: a seq of another epoch (a daemon that has
// since restarted) gets a reset, then live events; a since that is not a
// number is refused naming the field.
func TestEventsResetAndRefusals(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Host: noKVMHost{}})
	ctx := context.Background()
	live := follow(t, d.Client, 0, "")
	hello := live.next(t)

	f := follow(t, d.Client, 3, "an-earlier-epoch")
	h := f.next(t)
	if h.Kind != api.EventHello || h.Epoch != hello.Epoch || h.Seq != hello.Seq {
		t.Fatalf("hello %+v, want this daemon's epoch %s at seq %d", h, hello.Epoch, hello.Seq)
	}
	if r := f.next(t); r.Kind != api.EventReset || r.Epoch != hello.Epoch || r.Seq != hello.Seq {
		t.Fatalf("second line %+v, want a reset at seq %d", r, hello.Seq)
	}
	op, err := d.Client.BeginDeepDoctor(ctx, api.DeepDoctorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := f.next(t); ev.Kind != api.EventOperation || ev.ID != op.ID || ev.Seq != hello.Seq+1 {
		t.Errorf("after the reset: %+v, want the live operation %s at seq %d", ev, op.ID, hello.Seq+1)
	}

	hc := rawClient(d)
	for _, q := range []string{"since=abc", "since=-1", "since=1.5"} {
		a := send(t, hc, "GET", "/v1/events?"+q, "", nil)
		if a.status != 400 || a.err.Code != api.CodeInvalidArgument || a.err.Field != "since" ||
			!strings.Contains(a.err.Message, "is not a sequence number") {
			t.Errorf("%s: %d %+v, want invalid_argument on field since", q, a.status, a.err)
		}
	}
}

// TestEventsEndAtShutdown: a daemon that shuts down ends its event
// streams at once (Shutdown does not wait them out), and the client
// reports the end as ErrEventsEnded.
func TestEventsEndAtShutdown(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	f := follow(t, d.Client, 0, "")
	f.next(t)
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := f.end(t); !errors.Is(err, client.ErrEventsEnded) {
		t.Errorf("stream ended with %v, want ErrEventsEnded", err)
	}
	log, _ := os.ReadFile(d.Config.Paths.LogFile())
	if strings.Contains(string(log), "closing connections") {
		t.Errorf("shutdown had to force connections closed (an event stream held it up):\n%s", log)
	}
}

// TestEventsSlowReaderIsCutOff: a client that stops reading does not hold
// the daemon up: once its buffers are full the daemon cuts it off (and
// says so in its log), a reader that keeps up is not affected, and the
// slow one, after reading what was already sent, resumes from its last
// seq without a reset and without losing or repeating an event.
func TestEventsSlowReaderIsCutOff(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Host: noKVMHost{}})
	ctx := context.Background()
	fast := follow(t, d.Client, 0, "")
	hello := fast.next(t)

	release := make(chan struct{})
	var slow []api.Event
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- d.Client.Events(ctx, 0, "", func(ev api.Event) error {
			slow = append(slow, ev)
			if len(slow) == 2 {
				<-release // stop reading at the first change
			}
			return nil
		})
	}()
	// Each deep doctor run (on a host without KVM: no VM is booted) makes
	// a handful of events; run them until the daemon reports the cut-off.
	cut := false
	for i := 0; i < 2000 && !cut; i++ {
		op, err := d.Client.BeginDeepDoctor(ctx, api.DeepDoctorRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Client.WatchOperation(ctx, op.ID, nil); err != nil {
			t.Fatal(err)
		}
		log, _ := os.ReadFile(d.Config.Paths.LogFile())
		cut = strings.Contains(string(log), "fell too far behind and was cut off")
	}
	if !cut {
		t.Fatal("a reader that stopped reading was never cut off")
	}
	st, err := d.Client.Operations(ctx)
	if err != nil || len(st) == 0 {
		t.Fatal(err)
	}
	close(release)
	select {
	case err := <-slowDone:
		if !errors.Is(err, client.ErrEventsEnded) {
			t.Fatalf("the slow stream ended with %v, want ErrEventsEnded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the slow stream was not ended")
	}
	// The fast reader has every event; its last is the newest.
	all := fast.until(t, opDone(st[0].ID))
	checkNumbered(t, all, hello.Seq, hello.Epoch)
	head := all[len(all)-1].Seq
	if slow[0].Kind != api.EventHello {
		t.Fatalf("slow stream began with %+v", slow[0])
	}
	got := slow[1:]
	checkNumbered(t, got, slow[0].Seq, hello.Epoch)
	last := got[len(got)-1].Seq
	if last >= head {
		t.Fatalf("the slow reader got everything (up to %d of %d): it was not cut off", last, head)
	}
	again := follow(t, d.Client, last, hello.Epoch)
	if h := again.next(t); h.Kind != api.EventHello || h.Seq != last {
		t.Fatalf("resumed hello %+v, want seq %d", h, last)
	}
	rest := again.until(t, func(ev api.Event) bool { return ev.Seq == head })
	checkNumbered(t, rest, last, hello.Epoch)
	t.Logf("cut off after %d of %d events; resumed the other %d without a reset", len(got), head-slow[0].Seq, len(rest))
}

// vmStates renders the VM events among evs as "name state" / "name
// removed", each run of repeats once.
func vmStates(evs []api.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Kind != api.EventVM {
			continue
		}
		s := ev.Name + " removed"
		if !ev.Removed {
			s = ev.Name + " " + string(ev.VMState.State)
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// lastVM is the state carried by the last VM event among evs.
func lastVM(t *testing.T, evs []api.Event) api.VM {
	t.Helper()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == api.EventVM && evs[i].VMState != nil {
			return *evs[i].VMState
		}
	}
	t.Fatal("no VM event")
	return api.VM{}
}

// lastImage is the state carried by the last event of image name.
func lastImage(evs []api.Event, name string) *api.Image {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == api.EventImage && evs[i].Name == name {
			return evs[i].ImageState
		}
	}
	return nil
}

// TestEventsFollowVMs (fake hypervisor): a VM's create, stop, start and
// delete stream each state it goes through, the VM as GET shows it after
// each, next to the operations that did them; its image's users change
// with its create and delete.
func TestEventsFollowVMs(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	f := follow(t, d.Client, 0, "")
	hello := f.next(t)
	asGET := func() api.VM {
		v, err := d.Client.VM(ctx, "evvm")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	op, err := d.Client.BeginCreateVM(ctx, api.CreateVMRequest{Name: "evvm"})
	if err != nil {
		t.Fatal(err)
	}
	d.Await(t, op)
	evs := f.until(t, opDone(op.ID))
	checkNumbered(t, evs, hello.Seq, hello.Epoch)
	if diff := cmp.Diff([]string{"evvm creating", "evvm running"}, vmStates(evs)); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(asGET(), lastVM(t, evs), storeTimes); diff != "" {
		t.Errorf("after create, the VM event is not the VM as GET shows it (-get +event):\n%s", diff)
	}
	// Its image now counts it among its users.
	if img := lastImage(evs, daemontest.FakeImage); img == nil || !slices.Contains(img.UsedBy, "evvm") {
		t.Errorf("after create, image %s event %+v, want it used by evvm", daemontest.FakeImage, img)
	}

	if _, err := d.Client.StopVM(ctx, "evvm"); err != nil {
		t.Fatal(err)
	}
	stopped := f.until(t, func(ev api.Event) bool { return ev.Kind == api.EventVM && ev.VMState.State == api.VMStopped })
	if diff := cmp.Diff(asGET(), lastVM(t, stopped), storeTimes); diff != "" {
		t.Errorf("after stop (-get +event):\n%s", diff)
	}

	op, err = d.Client.BeginStartVM(ctx, "evvm")
	if err != nil {
		t.Fatal(err)
	}
	d.Await(t, op)
	evs = f.until(t, opDone(op.ID))
	if got := vmStates(evs); len(got) == 0 || got[len(got)-1] != "evvm running" {
		t.Errorf("start streamed %v, want it to end running", got)
	}

	if err := d.Client.DeleteVM(ctx, "evvm"); err != nil {
		t.Fatal(err)
	}
	evs = f.until(t, func(ev api.Event) bool { return ev.Kind == api.EventVM && ev.Removed })
	if diff := cmp.Diff([]string{"evvm deleting", "evvm removed"}, vmStates(evs)); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
	evs = f.until(t, func(ev api.Event) bool { return ev.Kind == api.EventImage })
	if img := lastImage(evs, daemontest.FakeImage); img == nil || slices.Contains(img.UsedBy, "evvm") {
		t.Errorf("after delete, image %s event %+v, want evvm no longer among its users", daemontest.FakeImage, img)
	}
}

// TestEventsRecordVMsFoundDeadAtStart (fake hypervisor): what a starting
// daemon's reconcile records — a VM whose hypervisor died while no daemon
// ran is marked stopped — is in the new epoch's feed from its first seq,
// before the daemon even listened; a client of the old epoch is told to
// reset.
func TestEventsRecordVMsFoundDeadAtStart(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	ctx := context.Background()
	crashed := d.CreateVM(t, api.CreateVMRequest{Name: "crashed"})
	old := follow(t, d.Client, 0, "")
	oldHello := old.next(t)
	old.cancel()
	for _, h := range d.Fake.Running() {
		if h.PID == crashed.PID {
			d.Fake.Crash(h)
		}
	}
	d.Restart(t)

	live := follow(t, d.Client, 0, "")
	hello := live.next(t)
	if hello.Epoch == oldHello.Epoch {
		t.Fatal("the restarted daemon kept its epoch")
	}
	if hello.Seq == 0 {
		t.Fatal("the new epoch starts empty: reconcile recorded nothing")
	}
	fromStart := follow(t, d.Client, 0, hello.Epoch)
	if h := fromStart.next(t); h.Kind != api.EventHello || h.Seq != 0 {
		t.Fatalf("resume from the epoch's start: hello %+v", h)
	}
	evs := fromStart.until(t, func(ev api.Event) bool { return ev.Seq == hello.Seq })
	if got := vmStates(evs); len(got) == 0 || got[len(got)-1] != "crashed stopped" {
		t.Errorf("reconcile recorded %v, want crashed stopped", got)
	}
	v, err := d.Client.VM(ctx, "crashed")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, lastVM(t, evs), storeTimes); diff != "" {
		t.Errorf("(-get +event):\n%s", diff)
	}

	stale := follow(t, d.Client, oldHello.Seq, oldHello.Epoch)
	stale.next(t)
	if r := stale.next(t); r.Kind != api.EventReset {
		t.Errorf("a client of the old epoch got %+v, want a reset", r)
	}
}

// BenchmarkEventFeed (fake hypervisor): 200 VMs created and deleted per
// iteration while 4 clients follow GET /v1/events; reports the changes
// each client received per second of the run and per VM.
func BenchmarkEventFeed(b *testing.B) {
	const vms, readers = 200, 4
	d := daemontest.Start(b, daemontest.Options{Fake: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := make([]uint64, readers) // events each reader received
	last := make([]uint64, readers)
	errs := make(chan error, readers)
	var subscribed sync.WaitGroup
	subscribed.Add(readers)
	for i := range readers {
		go func() {
			errs <- d.Client.Events(ctx, 0, "", func(ev api.Event) error {
				if ev.Kind == api.EventHello {
					subscribed.Done()
				} else {
					mu.Lock()
					got[i]++
					last[i] = ev.Seq
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	subscribed.Wait()
	start := time.Now()
	for b.Loop() {
		created := daemontest.CreateVMs(b, d, vms)
		names := make([]string, len(created))
		for i, v := range created {
			names[i] = v.Name
		}
		daemontest.DeleteVMs(b, d, names)
	}
	// Wait until every reader has the newest event.
	var head uint64
	probe := d.Client.Events(ctx, 0, "", func(ev api.Event) error { head = ev.Seq; return errors.New("got the hello") })
	if head == 0 {
		b.Fatalf("no head seq: %v", probe)
	}
	for {
		mu.Lock()
		caught := true
		for i := range readers {
			caught = caught && last[i] >= head
		}
		mu.Unlock()
		if caught {
			break
		}
		select {
		case err := <-errs:
			b.Fatalf("a reader's stream ended: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	for i := range readers {
		if got[i] != got[0] {
			b.Errorf("reader %d got %d events, reader 0 %d", i, got[i], got[0])
		}
	}
	b.ReportMetric(float64(got[0])/elapsed.Seconds(), "events/s/reader")
	b.ReportMetric(float64(got[0])/float64(b.N*vms), "events/vm")
}
