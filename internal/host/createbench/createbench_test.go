package createbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// ms is n milliseconds.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// stage is a finished stage from t0+from to t0+to (milliseconds).
func stage(name string, from, to int) api.Stage {
	return api.Stage{Name: name, StartedAt: t0.Add(ms(from)), FinishedAt: t0.Add(ms(to)), Duration: api.Duration(ms(to - from))}
}

// createOp is a succeeded create made at t0 whose launch stage ends at
// launchEnd and whose whole run ends at end, with a 1 ms gap before
// allocate and after each stage.
func createOp(launchEnd, end int) api.Operation {
	return api.Operation{
		State: api.OperationSucceeded, CreatedAt: t0, FinishedAt: t0.Add(ms(end)),
		Stages: []api.Stage{
			stage("allocate", 1, 3),
			stage("clone rootfs", 4, launchEnd-3),
			stage("launch qemu", launchEnd-2, launchEnd),
			stage("agent health", launchEnd+1, end),
		},
	}
}

// A create from a warm snapshot restores instead of launching, and its
// agent is ready once the identity stage gave it the VM's own identity.
func TestWarmCreateFigures(t *testing.T) {
	op := api.Operation{
		State: api.OperationSucceeded, CreatedAt: t0, FinishedAt: t0.Add(ms(900)),
		Stages: []api.Stage{
			stage("allocate", 1, 3), stage("clone state", 4, 20), stage("sync auth files", 21, 25),
			stage("acquire tap", 26, 30), stage("restore qemu", 31, 200), stage("identity", 201, 400), stage("readiness", 401, 900),
		},
	}
	if d, ok := HostSide(op); !ok || d != ms(200) {
		t.Errorf("HostSide = %v, %v; want the end of restore, 200ms", d, ok)
	}
	if d, ok := AgentReady(op); !ok || d != ms(400) {
		t.Errorf("AgentReady = %v, %v; want the end of identity, 400ms", d, ok)
	}
	if !Warm(op) || Warm(createOp(40, 900)) {
		t.Error("Warm tells a restore from a boot wrongly")
	}
	if d, ok := AgentReady(createOp(40, 900)); !ok || d != ms(900) {
		t.Errorf("AgentReady of a boot = %v, %v; want the end of agent health", d, ok)
	}
	unfinished := createOp(40, 900)
	unfinished.Stages[3].FinishedAt = time.Time{}
	if _, ok := AgentReady(unfinished); ok {
		t.Error("AgentReady of a create whose agent never answered")
	}
}

func TestHostSide(t *testing.T) {
	tests := []struct {
		name   string
		op     api.Operation
		want   time.Duration
		wantOK bool
	}{
		{"from creation to the end of launch, gaps included", createOp(40, 900), ms(40), true},
		{"a relaunch: the first launch ends it", api.Operation{CreatedAt: t0, Stages: []api.Stage{
			stage("allocate", 0, 2), stage("launch firecracker", 5, 7), stage("agent health", 7, 500),
			stage("launch firecracker", 500, 502)}}, ms(7), true},
		{"heal image counts, as any stage before launch", api.Operation{CreatedAt: t0, Stages: []api.Stage{
			stage("allocate", 0, 2), stage("heal image", 2, 3000), stage("launch qemu", 3001, 3050)}}, ms(3050), true},
		{"failed before launch", api.Operation{CreatedAt: t0, State: api.OperationFailed, Stages: []api.Stage{
			stage("allocate", 0, 2), stage("clone rootfs", 2, 9)}}, 0, false},
		{"launch still running", api.Operation{CreatedAt: t0, Stages: []api.Stage{
			stage("allocate", 0, 2), {Name: "launch qemu", StartedAt: t0.Add(ms(3))}}}, 0, false},
		{"no stages", api.Operation{CreatedAt: t0}, 0, false},
		{"a stage merely named like launch is not it", api.Operation{CreatedAt: t0, Stages: []api.Stage{
			stage("launcher", 0, 2)}}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := HostSide(tt.op)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("HostSide = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestOf(t *testing.T) {
	tests := []struct {
		name string
		xs   []int // milliseconds, in the order measured
		want Stats // Name "x"
	}{
		{"none", nil, Stats{Name: "x"}},
		{"one", []int{7}, Stats{Name: "x", N: 1, P50: ms(7), P95: ms(7), Min: ms(7), Max: ms(7)}},
		{"two: p50 is the lower", []int{9, 3}, Stats{Name: "x", N: 2, P50: ms(3), P95: ms(9), Min: ms(3), Max: ms(9)}},
		// 3 parallel × 2 rounds: p50 is the 3rd smallest, p95 the 6th.
		{"six, unordered", []int{30, 10, 60, 20, 50, 40}, Stats{Name: "x", N: 6, P50: ms(30), P95: ms(60), Min: ms(10), Max: ms(60)}},
		// 10 parallel: p95 is the 10th (ceil 9.5), p50 the 5th.
		{"ten", []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 100}, Stats{Name: "x", N: 10, P50: ms(5), P95: ms(100), Min: ms(1), Max: ms(100)}},
		// 20: p95 is the 19th, so one outlier stays out of it.
		{"twenty, one outlier", append(slices.Repeat([]int{10}, 19), 999), Stats{Name: "x", N: 20, P50: ms(10), P95: ms(10), Min: ms(10), Max: ms(999)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var xs []time.Duration
			for _, x := range tt.xs {
				xs = append(xs, ms(x))
			}
			before := slices.Clone(xs)
			if diff := cmp.Diff(tt.want, Of("x", xs)); diff != "" {
				t.Errorf("Of (-want +got):\n%s", diff)
			}
			if !slices.Equal(before, xs) {
				t.Errorf("Of reordered its input: %v", xs)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	healed := createOp(3050, 4000)
	healed.Stages = slices.Insert(healed.Stages, 1, stage("heal image", 3, 3000))
	tests := []struct {
		name string
		ops  []api.Operation
		want Report
	}{
		{"nothing", nil, Report{HostSide: Stats{Name: "host-side"}, AgentReady: Stats{Name: "agent-ready"}, Total: Stats{Name: "total"}}},
		{"three parallel creates, stats over all of them", []api.Operation{createOp(40, 900), createOp(20, 700), createOp(60, 800)}, Report{
			Stages: []Stats{
				{Name: "allocate", N: 3, P50: ms(2), P95: ms(2), Min: ms(2), Max: ms(2)},
				{Name: "clone rootfs", N: 3, P50: ms(33), P95: ms(53), Min: ms(13), Max: ms(53)},
				{Name: "launch qemu", N: 3, P50: ms(2), P95: ms(2), Min: ms(2), Max: ms(2)},
				{Name: "agent health", N: 3, P50: ms(739), P95: ms(859), Min: ms(679), Max: ms(859)},
			},
			HostSide:   Stats{Name: "host-side", N: 3, P50: ms(40), P95: ms(60), Min: ms(20), Max: ms(60)},
			AgentReady: Stats{Name: "agent-ready", N: 3, P50: ms(800), P95: ms(900), Min: ms(700), Max: ms(900)},
			Total:      Stats{Name: "total", N: 3, P50: ms(800), P95: ms(900), Min: ms(700), Max: ms(900)},
		}},
		{"a stage only one create ran keeps its place and counts once", []api.Operation{createOp(40, 900), healed}, Report{
			Stages: []Stats{
				{Name: "allocate", N: 2, P50: ms(2), P95: ms(2), Min: ms(2), Max: ms(2)},
				{Name: "clone rootfs", N: 2, P50: ms(33), P95: ms(3043), Min: ms(33), Max: ms(3043)},
				{Name: "launch qemu", N: 2, P50: ms(2), P95: ms(2), Min: ms(2), Max: ms(2)},
				{Name: "agent health", N: 2, P50: ms(859), P95: ms(949), Min: ms(859), Max: ms(949)},
				{Name: "heal image", N: 1, P50: ms(2997), P95: ms(2997), Min: ms(2997), Max: ms(2997)},
			},
			HostSide:   Stats{Name: "host-side", N: 2, P50: ms(40), P95: ms(3050), Min: ms(40), Max: ms(3050)},
			AgentReady: Stats{Name: "agent-ready", N: 2, P50: ms(900), P95: ms(4000), Min: ms(900), Max: ms(4000)},
			Total:      Stats{Name: "total", N: 2, P50: ms(900), P95: ms(4000), Min: ms(900), Max: ms(4000)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Summarize(tt.ops)); diff != "" {
				t.Errorf("Summarize (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeClient is a hand-written Client: creates succeed (or fail, for the
// numbers in fail, counted from 1 in the order begun) at once, and it
// records what was created, deleted and how many creates were in flight
// at most.
type fakeClient struct {
	fail map[int]bool
	// hold, when set, keeps each create's watch until that many creates
	// are in flight, so a round's parallelism shows in maxInFlight.
	hold int

	mu          sync.Mutex
	begun       int
	watched     int
	inFlight    int
	maxInFlight int
	created     []string
	deleted     []string
	requests    []api.CreateVMRequest
	arrived     *sync.Cond
}

func newFakeClient() *fakeClient {
	c := &fakeClient{fail: map[int]bool{}}
	c.arrived = sync.NewCond(&c.mu)
	return c
}

func (c *fakeClient) BeginCreateVM(_ context.Context, req api.CreateVMRequest) (api.Operation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.begun++
	c.requests = append(c.requests, req)
	return api.Operation{ID: fmt.Sprintf("op-%d", c.begun), State: api.OperationRunning}, nil
}

func (c *fakeClient) WatchOperation(_ context.Context, id string, _ func(api.OperationEvent) error) (api.Operation, error) {
	var n int
	fmt.Sscanf(id, "op-%d", &n)
	c.mu.Lock()
	c.inFlight++
	c.maxInFlight = max(c.maxInFlight, c.inFlight)
	c.watched++
	c.arrived.Broadcast()
	// The k-th watch waits for the rest of its group of hold.
	for k := c.watched; c.hold > 0 && c.watched < ((k-1)/c.hold+1)*c.hold; {
		c.arrived.Wait()
	}
	c.inFlight--
	name := fmt.Sprintf("vm%d", n)
	if c.fail[n] {
		c.mu.Unlock()
		return api.Operation{ID: id, State: api.OperationFailed, Error: api.Errorf(api.CodeInternal, "launch failed")}, nil
	}
	c.created = append(c.created, name)
	c.mu.Unlock()
	res, _ := json.Marshal(api.VM{Name: name, Image: "base"})
	op := createOp(10*n, 100*n)
	op.ID, op.Target, op.Result = id, name, res
	return op, nil
}

func (c *fakeClient) DeleteVM(_ context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted = append(c.deleted, name)
	return nil
}

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		fail        []int
		wantOps     int
		wantErr     string // a regexp
		wantCreated int    // VMs created, every one deleted
		wantImages  []string
	}{
		{"3 at once, 2 rounds: 6 creates", Options{Rounds: 2, Parallel: 3}, nil, 6, "", 6, []string{"", "", "", "base", "base", "base"}},
		{"one at a time", Options{Rounds: 3, Parallel: 1}, nil, 3, "", 3, []string{"", "base", "base"}},
		{"the image asked for is kept", Options{Rounds: 2, Parallel: 1, Request: api.CreateVMRequest{Image: "big"}}, nil, 2, "", 2, []string{"big", "big"}},
		{"a failure in round 2 ends the bench after that round, its VMs deleted", Options{Rounds: 3, Parallel: 2}, []int{4}, 2, `^round 2: create [12] of 2: launch failed$`, 3, []string{"", "", "base", "base"}},
		{"no rounds", Options{Rounds: 0, Parallel: 1}, nil, 0, "at least 1 round", 0, nil},
		{"no creates per round", Options{Rounds: 1, Parallel: 0}, nil, 0, "at least 1 create per round", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClient()
			c.hold = tt.opts.Parallel
			for _, n := range tt.fail {
				c.fail[n] = true
			}
			tt.opts.Request.Name = "ignored"
			var told []string
			tt.opts.Created = func(round int, v api.VM, op api.Operation) {
				told = append(told, fmt.Sprintf("%d %s %s", round, v.Name, op.ID))
			}
			ops, _, err := Run(context.Background(), c, tt.opts)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !regexp.MustCompile(tt.wantErr).MatchString(err.Error())) {
				t.Fatalf("Run: %v, want %q", err, tt.wantErr)
			}
			if len(ops) != tt.wantOps {
				t.Errorf("%d operations, want %d", len(ops), tt.wantOps)
			}
			slices.Sort(c.created)
			slices.Sort(c.deleted)
			if len(c.created) != tt.wantCreated || !slices.Equal(c.created, c.deleted) {
				t.Errorf("created %v, deleted %v; want %d created, all deleted", c.created, c.deleted, tt.wantCreated)
			}
			if c.begun > 0 && c.maxInFlight != tt.opts.Parallel {
				t.Errorf("at most %d creates in flight, want %d", c.maxInFlight, tt.opts.Parallel)
			}
			var images []string
			for _, r := range c.requests {
				if r.Name != "" {
					t.Errorf("a create asked for the name %q", r.Name)
				}
				images = append(images, r.Image)
			}
			if diff := cmp.Diff(tt.wantImages, images); diff != "" {
				t.Errorf("images asked for (-want +got):\n%s", diff)
			}
			if err == nil && len(told) != tt.wantOps {
				t.Errorf("Created told of %v, want %d creates", told, tt.wantOps)
			}
		})
	}
}

// A create whose operation cannot be followed (the connection broke)
// fails the bench; the VMs of its round that were made are deleted.
func TestRunFollowFails(t *testing.T) {
	c := &brokenWatch{fakeClient: newFakeClient()}
	_, _, err := Run(context.Background(), c, Options{Rounds: 1, Parallel: 2})
	if err == nil || !strings.Contains(err.Error(), "following operation op-2: connection reset") {
		t.Fatalf("Run: %v", err)
	}
	if !slices.Equal(c.created, c.deleted) || len(c.created) != 1 {
		t.Errorf("created %v, deleted %v", c.created, c.deleted)
	}
}

// brokenWatch fails to follow the second create.
type brokenWatch struct{ *fakeClient }

func (c *brokenWatch) WatchOperation(ctx context.Context, id string, fn func(api.OperationEvent) error) (api.Operation, error) {
	if id == "op-2" {
		return api.Operation{}, errors.New("connection reset")
	}
	return c.fakeClient.WatchOperation(ctx, id, fn)
}
