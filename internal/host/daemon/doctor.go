package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/debkernel"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/kvmprobe"
	"github.com/bangerdev/banger/internal/host/operation"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
)

// factKVMProbe is the host fact holding the last doctor.ProbeRecord.
const factKVMProbe = "kvm_probe"

// probeKernelPackage is the kernel the probe boots when no image supplies
// one: Debian's cloud kernel, fetched once and cached by content.
const probeKernelPackage = "linux-image-cloud-amd64"

func (d *Daemon) lastProbe(ctx context.Context) (*doctor.ProbeRecord, error) {
	v, _, err := d.store.HostFact(ctx, factKVMProbe)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec doctor.ProbeRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		d.log.Warn("ignoring corrupt kvm probe record", "error", err)
		return nil, nil
	}
	return &rec, nil
}

func (d *Daemon) quickReport(ctx context.Context) (api.DoctorReport, error) {
	probe, err := d.lastProbe(ctx)
	if err != nil {
		return api.DoctorReport{}, err
	}
	rep := doctor.Run(ctx, d.host, doctor.Inputs{Config: d.cfg, ConfigFileFound: d.opts.ConfigFileFound, Probe: probe})
	imgCheck, err := d.imagesCheck(ctx, false)
	if err != nil {
		return rep, err
	}
	rep.Checks = append(rep.Checks, imgCheck, d.firecrackerImageCheck(ctx))
	rep.Checks = append(rep.Checks, d.networkChecks(ctx)...)
	return rep, nil
}

// firecrackerImageCheck judges the newest ready image's kernel for
// Firecracker.
func (d *Daemon) firecrackerImageCheck(ctx context.Context) api.Check {
	imgs, err := d.images.List(ctx)
	if err != nil {
		return api.Check{Name: doctor.CheckFCImage, Status: api.CheckFail, Detail: err.Error(), Fix: "see `banger daemon logs`"}
	}
	var newest *image.Image
	for i := range imgs {
		if imgs[i].State == api.ImageReady && (newest == nil || imgs[i].CreatedAt.After(newest.CreatedAt)) {
			newest = &imgs[i]
		}
	}
	if newest == nil {
		return doctor.FirecrackerImageCheck("", api.KernelInfo{}, d.fcVersion)
	}
	return doctor.FirecrackerImageCheck(newest.Name, newest.Manifest.Kernel, d.fcVersion)
}

func (d *Daemon) networkChecks(ctx context.Context) []api.Check {
	if d.net == nil {
		return seamNetworkChecks()
	}
	cfg := d.net.Config() // the resolvers may change while the daemon runs
	st, err := d.net.host.Observe(ctx, cfg)
	if err != nil {
		return []api.Check{{Name: doctor.CheckBridge, Status: api.CheckFail, Detail: "reading the host network: " + err.Error(),
			Fix: "check that bangerd may use netlink here"}}
	}
	leased, _ := d.net.leased(ctx)
	other, _ := d.vms.Leaks(ctx)
	return doctor.NetworkChecks(doctor.NetworkInputs{Config: cfg, State: st, Leased: leased, DaemonRoot: os.Geteuid() == 0, OtherLeaks: other})
}

// imagesCheck verifies every image: sizes in a quick run, digests in a
// deep one.
func (d *Daemon) imagesCheck(ctx context.Context, deep bool) (api.Check, error) {
	imgs, err := d.images.List(ctx)
	if err != nil {
		return api.Check{}, err
	}
	var problems []doctor.ImageProblem
	count := 0
	for _, img := range imgs {
		if img.State == "removed" {
			continue
		}
		count++
		for _, p := range d.images.Verify(img, deep) {
			problems = append(problems, doctor.ImageProblem{Image: p.Image, Detail: p.Detail, Fix: p.Fix})
		}
	}
	return doctor.ImagesCheck(count, problems, deep), nil
}

func (d *Daemon) getDoctor(w http.ResponseWriter, r *http.Request) error {
	rep, err := d.quickReport(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (d *Daemon) postDeepDoctor(w http.ResponseWriter, r *http.Request) error {
	var req api.DeepDoctorRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	timeout := req.ProbeTimeout.D()
	if timeout < 0 || timeout > 10*time.Minute {
		return api.FieldErrorf("probe_timeout_ms", "1ms..10m", "probe_timeout_ms %s is out of range: use 1ms..10m, or leave it out for the default", timeout)
	}
	op, err := d.ops.Begin("doctor", "host", func(ctx context.Context, run *operation.Run) (any, error) {
		return d.deepDoctor(ctx, run, timeout)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, op)
}

// deepDoctor runs the quick checks, then boots a probe guest under KVM to
// find out whether KVM really works here, and records what it found.
func (d *Daemon) deepDoctor(ctx context.Context, run *operation.Run, timeout time.Duration) (api.DoctorReport, error) {
	run.Stage("host checks")
	rep, err := d.quickReport(ctx)
	if err != nil {
		return rep, err
	}
	rec, err := d.kvmProbe(ctx, run, timeout)
	if err != nil {
		return rep, err
	}
	if b, err := json.Marshal(rec); err == nil {
		if err := d.store.SetHostFact(ctx, factKVMProbe, string(b)); err != nil {
			return rep, fmt.Errorf("recording the probe result: %w", err)
		}
	}
	run.Stage("image digests")
	imgCheck, err := d.imagesCheck(ctx, true)
	if err != nil {
		return rep, err
	}
	for i, c := range rep.Checks {
		switch c.Name {
		case doctor.CheckKVMBoot:
			rep.Checks[i] = doctor.KVMBootCheck(rec)
		case doctor.CheckImages:
			rep.Checks[i] = imgCheck
		}
	}
	return rep, nil
}

func (d *Daemon) kvmProbe(ctx context.Context, run *operation.Run, timeout time.Duration) (*doctor.ProbeRecord, error) {
	rec := &doctor.ProbeRecord{At: time.Now().UTC()}
	unavailable := func(reason string) (*doctor.ProbeRecord, error) {
		rec.Status, rec.Reason = string(kvmprobe.Unavailable), reason
		run.Detail("skipped: %s", reason)
		return rec, nil
	}
	run.Stage("kvm device")
	if err := d.host.KVMDevice(); err != nil {
		return unavailable(err.Error())
	}
	if _, err := os.Stat(d.agentBin); err != nil {
		return unavailable(fmt.Sprintf("the banger-agent companion binary is missing at %s: reinstall banger (`make install`)", d.agentBin))
	}

	run.Stage("probe kernel")
	k, err := debkernel.Fetch(ctx, filepath.Join(d.cfg.Paths.Cache(), "kernels"), probeKernelPackage, d.log)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return unavailable("no kernel to probe with: " + err.Error())
	}
	run.Detail("%s", k.Release)
	rec.Kernel = k.Release

	run.Stage("probe initramfs")
	dir := filepath.Join(d.cfg.Paths.StateDir, "probe")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeProbeInitramfs(initrd, d.agentBin); err != nil {
		return nil, fmt.Errorf("building the probe initramfs: %w", err)
	}

	run.Stage("kvm boot probe")
	res := kvmprobe.Run(ctx, kvmprobe.Options{
		QEMUBin: d.cfg.QEMUBin, Kernel: k.Vmlinuz, Initramfs: initrd, Accel: "kvm", Timeout: timeout, WorkDir: dir,
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	run.Detail("%s", res.Status)
	rec.Status, rec.Reason, rec.Elapsed = string(res.Status), res.Reason, api.Duration(res.Elapsed)
	d.log.Info("kvm probe finished", "status", res.Status, "reason", res.Reason, "elapsed_ms", res.Elapsed.Milliseconds())
	return rec, nil
}

func writeProbeInitramfs(path, agentBin string) error {
	f, err := atomicfile.Create(path, 0o600, 0)
	if err != nil {
		return err
	}
	defer f.Abort() // a no-op after Commit
	if err := kvmprobe.WriteInitramfs(f, agentBin); err != nil {
		return err
	}
	return f.Commit()
}
