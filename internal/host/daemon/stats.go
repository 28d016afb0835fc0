package daemon

import (
	"context"
	"net/http"
	"sync"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/host/vmstats"
)

// statsSampler is the daemon's VM sampler (package vmstats), made on first
// use; it keeps each hypervisor process's previous CPU reading.
type statsSampler struct {
	once sync.Once
	s    *vmstats.Sampler
}

func (d *Daemon) sampler() *vmstats.Sampler {
	d.stats.once.Do(func() { d.stats.s = &vmstats.Sampler{Log: d.log} })
	return d.stats.s
}

// statsTarget says what to sample of a running VM: its hypervisor
// process, disk files, TAP and agent.
func (d *Daemon) statsTarget(v vm.VM) vmstats.Target {
	t := vmstats.Target{Name: v.Name, MemoryMiB: v.Spec.MemoryMiB, TAP: v.Runtime.TAP}
	if h := v.Runtime.Handle; h != nil {
		t.PID, t.StartTime = h.PID, h.StartTime
	}
	for _, f := range d.vms.DiskFiles(v.ID) {
		t.Disks = append(t.Disks, vmstats.Disk{Name: f.Name, Path: f.Path})
	}
	id := v.ID
	t.Agent = func(ctx context.Context) (vmstats.Caller, error) {
		_, s, err := d.vms.Agent(ctx, id)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return t
}

// notRunning is the refusal of a VM's stats when it is not running.
func notRunning(v vm.VM) error {
	if v.State == api.VMCreating {
		return api.Errorf(api.CodeFailedPrecondition, "VM %s is still being created: ask again once it is running", v.Name)
	}
	return api.Errorf(api.CodeFailedPrecondition, "VM %s is %s: start it with `banger vm start %s`", v.Name, v.State, v.Name)
}

// vmStats answers GET /v1/vms/{name}/stats: one running VM's figures.
func (d *Daemon) vmStats(w http.ResponseWriter, r *http.Request) error {
	v, err := d.vms.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if v.State != api.VMRunning || v.Runtime.Handle == nil {
		return notRunning(v)
	}
	return writeJSON(w, http.StatusOK, d.sampler().Sample(r.Context(), d.statsTarget(v)))
}

// allStats answers GET /v1/stats: every running VM's figures in one
// answer, sampled concurrently, so a front end never asks per VM.
func (d *Daemon) allStats(w http.ResponseWriter, r *http.Request) error {
	vms, err := d.vms.List(r.Context())
	if err != nil {
		return err
	}
	var targets []vmstats.Target
	for _, v := range vms {
		if v.State == api.VMRunning && v.Runtime.Handle != nil {
			targets = append(targets, d.statsTarget(v))
		}
	}
	stats := d.sampler().SampleAll(r.Context(), targets)
	if stats == nil {
		stats = []api.VMStats{}
	}
	return writeJSON(w, http.StatusOK, api.StatsList{Stats: stats})
}
