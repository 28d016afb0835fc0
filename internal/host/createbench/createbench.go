// Package createbench measures VM creates from their operation records:
// it runs rounds of concurrent creates through the API (each VM deleted
// once its round is done), and turns the finished operations into figures
// — each stage's percentiles, the host-side span and the total. `banger
// bench create` and the Go benchmarks of create both use it, so both mean
// the same thing by "host-side".
package createbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
)

// LaunchPrefix begins the name of the stage that launches the hypervisor
// ("launch qemu", "launch firecracker"); RestorePrefix the one that
// launches it from a warm snapshot's state instead ("restore qemu").
const (
	LaunchPrefix  = "launch "
	RestorePrefix = "restore "
)

// Stages after which a create's guest agent answers: a boot's agent
// health, a warm create's identity (the restored agent took the VM's own
// identity and key).
const (
	StageAgentHealth = "agent health"
	StageIdentity    = "identity"
)

// AgentReady is how long a create took until its guest agent answered:
// from the operation's creation to the end of its agent health stage (a
// boot) or identity stage (a restore from a warm snapshot). ok is false
// when the operation never finished one.
func AgentReady(op api.Operation) (d time.Duration, ok bool) {
	for _, st := range op.Stages {
		if st.Name == StageAgentHealth || st.Name == StageIdentity {
			if st.FinishedAt.IsZero() {
				return 0, false
			}
			return st.FinishedAt.Sub(op.CreatedAt), true
		}
	}
	return 0, false
}

// Warm reports whether a create restored a warm snapshot.
func Warm(op api.Operation) bool {
	for _, st := range op.Stages {
		if strings.HasPrefix(st.Name, RestorePrefix) {
			return true
		}
	}
	return false
}

// HostSide is the host's share of a create: from the operation's
// creation (the request accepted) to the end of its first launch stage.
// By then every host-side stage has run — allocate, heal image (when the
// image needed it), clone rootfs, work disk, sync auth files, acquire tap —
// and the hypervisor process is up with all disks and the network
// attached; what follows (agent health, readiness) is the guest booting.
// The span counts the gaps between stages too (validation, the store
// writes between them). A relaunch after a stalled boot is guest time, so
// the first launch stage ends the span. ok is false when the operation
// never finished a launch stage (it failed before).
func HostSide(op api.Operation) (d time.Duration, ok bool) {
	for _, st := range op.Stages {
		if strings.HasPrefix(st.Name, LaunchPrefix) || strings.HasPrefix(st.Name, RestorePrefix) {
			if st.FinishedAt.IsZero() {
				return 0, false
			}
			return st.FinishedAt.Sub(op.CreatedAt), true
		}
	}
	return 0, false
}

// Stats are the figures of one measure over a set of creates.
type Stats struct {
	Name               string
	N                  int
	P50, P95, Min, Max time.Duration
}

// Of computes the figures of xs; percentiles by the nearest-rank method
// (p95 of 6 samples is the 6th smallest: ceil(0.95·6) = 6).
func Of(name string, xs []time.Duration) Stats {
	s := Stats{Name: name, N: len(xs)}
	if len(xs) == 0 {
		return s
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return sorted[max(0, min(i, len(sorted)-1))]
	}
	s.P50, s.P95, s.Min, s.Max = rank(0.50), rank(0.95), sorted[0], sorted[len(sorted)-1]
	return s
}

// Report is the figures of a set of finished creates.
type Report struct {
	// Stages are in the order they first appear; a stage only some
	// creates ran (heal image) counts only those.
	Stages []Stats
	// HostSide is HostSide over the creates that launched.
	HostSide Stats
	// AgentReady is AgentReady over the creates whose agent answered.
	AgentReady Stats
	// Total is from the operation's creation to its end.
	Total Stats
}

// Summarize computes the figures of succeeded create operations. A stage
// that appears twice in one operation (a relaunch) counts each time.
func Summarize(ops []api.Operation) Report {
	samples := map[string][]time.Duration{}
	var order []string
	var host, ready, total []time.Duration
	for _, op := range ops {
		for _, st := range op.Stages {
			if _, ok := samples[st.Name]; !ok {
				order = append(order, st.Name)
			}
			samples[st.Name] = append(samples[st.Name], st.Duration.D())
		}
		if d, ok := HostSide(op); ok {
			host = append(host, d)
		}
		if d, ok := AgentReady(op); ok {
			ready = append(ready, d)
		}
		if !op.FinishedAt.IsZero() {
			total = append(total, op.FinishedAt.Sub(op.CreatedAt))
		}
	}
	rep := Report{HostSide: Of("host-side", host), AgentReady: Of("agent-ready", ready), Total: Of("total", total)}
	for _, name := range order {
		rep.Stages = append(rep.Stages, Of(name, samples[name]))
	}
	return rep
}

// Client is what a bench needs of the daemon's API (client.Client).
type Client interface {
	BeginCreateVM(ctx context.Context, req api.CreateVMRequest) (api.Operation, error)
	WatchOperation(ctx context.Context, id string, fn func(api.OperationEvent) error) (api.Operation, error)
	DeleteVM(ctx context.Context, name string) error
}

// Options say what to create and how often.
type Options struct {
	// Rounds run one after another; each begins Parallel creates at
	// once, follows them to their end, then deletes the VMs.
	Rounds, Parallel int
	// Request is what every create asks for; its name is ignored (each
	// VM gets a generated one). With no image, the first VM's image is
	// used for every later round.
	Request api.CreateVMRequest
	// Created, when set, is told of each VM once it is ready (before it
	// is deleted): round counts from 1.
	Created func(round int, v api.VM, op api.Operation)
}

// Validate refuses options that would measure nothing.
func (o Options) Validate() error {
	if o.Rounds < 1 {
		return fmt.Errorf("a bench needs at least 1 round, not %d", o.Rounds)
	}
	if o.Parallel < 1 {
		return fmt.Errorf("a bench needs at least 1 create per round, not %d", o.Parallel)
	}
	return nil
}

// Run runs the rounds and returns every create's finished operation, in
// the order the creates were begun, and the image they booted. Every VM a
// create made is deleted, also when a create fails or ctx ends (the
// deletes outlive ctx); a failed create ends the bench after its round
// with its error.
func Run(ctx context.Context, c Client, o Options) (ops []api.Operation, image string, err error) {
	if err := o.Validate(); err != nil {
		return nil, "", err
	}
	req := o.Request
	req.Name = ""
	for round := 1; round <= o.Rounds; round++ {
		got, vms, err := runRound(ctx, c, req, o.Parallel)
		if len(vms) > 0 && req.Image == "" {
			req.Image = vms[0].Image
		}
		if err == nil && o.Created != nil {
			for i, v := range vms {
				o.Created(round, v, got[i])
			}
		}
		derr := deleteAll(context.WithoutCancel(ctx), c, vms)
		if err != nil {
			return ops, req.Image, fmt.Errorf("round %d: %w", round, errors.Join(err, derr))
		}
		if derr != nil {
			return ops, req.Image, derr
		}
		ops = append(ops, got...)
	}
	return ops, req.Image, nil
}

// runRound begins n creates at once and follows each to its end. It
// returns the succeeded creates' operations and VMs (in the order begun)
// and the first failure.
func runRound(ctx context.Context, c Client, req api.CreateVMRequest, n int) ([]api.Operation, []api.VM, error) {
	type result struct {
		op  api.Operation
		vm  api.VM
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			op, v, err := create(ctx, c, req)
			results[i] = result{op, v, err}
		})
	}
	wg.Wait()
	var (
		ops  []api.Operation
		vms  []api.VM
		errs []error
	)
	for i, r := range results {
		if r.vm.Name != "" {
			vms = append(vms, r.vm)
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("create %d of %d: %w", i+1, n, r.err))
			continue
		}
		ops = append(ops, r.op)
	}
	return ops, vms, errors.Join(errs...)
}

// create begins one create and follows it. A VM whose operation ended
// but whose result cannot be read is still returned by name when its
// operation names it, so that it is deleted.
func create(ctx context.Context, c Client, req api.CreateVMRequest) (api.Operation, api.VM, error) {
	op, err := c.BeginCreateVM(ctx, req)
	if err != nil {
		return op, api.VM{}, err
	}
	final, err := c.WatchOperation(ctx, op.ID, nil)
	if err != nil {
		return final, api.VM{}, fmt.Errorf("following operation %s: %w", op.ID, err)
	}
	if final.State != api.OperationSucceeded {
		if final.Error != nil {
			return final, api.VM{}, final.Error
		}
		return final, api.VM{}, fmt.Errorf("operation %s %s", final.ID, final.State)
	}
	var v api.VM
	if err := json.Unmarshal(final.Result, &v); err != nil || v.Name == "" {
		return final, api.VM{Name: final.Target}, fmt.Errorf("operation %s: its result is no VM (%v)", final.ID, err)
	}
	return final, v, nil
}

// deleteAll deletes the VMs at once and returns every failure.
func deleteAll(ctx context.Context, c Client, vms []api.VM) error {
	errs := make([]error, len(vms))
	var wg sync.WaitGroup
	for i, v := range vms {
		wg.Go(func() {
			if err := c.DeleteVM(ctx, v.Name); err != nil {
				errs[i] = fmt.Errorf("deleting %s: %w", v.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
