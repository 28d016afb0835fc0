package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/operation"
	"github.com/bangerdev/banger/internal/host/vm"
)

func (d *Daemon) listVMs(w http.ResponseWriter, r *http.Request) error {
	vms, err := d.vms.List(r.Context())
	if err != nil {
		return err
	}
	out := api.VMList{VMs: []api.VM{}}
	for _, v := range vms {
		out.VMs = append(out.VMs, d.vms.API(r.Context(), v))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) getVM(w http.ResponseWriter, r *http.Request) error {
	v, err := d.vms.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d.vms.API(r.Context(), v))
}

// beginVMOp starts a VM operation whose result is the VM.
func (d *Daemon) beginVMOp(w http.ResponseWriter, kind, target string, fn func(ctx context.Context, run *operation.Run) (vm.VM, error)) error {
	op, err := d.ops.Begin(kind, target, func(ctx context.Context, run *operation.Run) (any, error) {
		v, err := fn(ctx, run)
		if err != nil {
			return nil, err
		}
		return d.vms.API(context.WithoutCancel(ctx), v), nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, op)
}

func (d *Daemon) createVM(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateVMRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	// Bad input is answered now, before anything is allocated.
	if _, err := d.vms.ValidateCreate(r.Context(), &req); err != nil {
		return err
	}
	if err := checkPublish(req.Publish); err != nil {
		return err
	}
	return d.beginVMOp(w, "vm.create", req.Name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
		v, err := d.vms.Create(ctx, req, run)
		if err == nil {
			err = d.publishCreated(ctx, v, req.Publish, run)
		}
		return v, err
	})
}

func (d *Daemon) startVM(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, err := d.vms.Get(r.Context(), name)
	if err != nil {
		return err
	}
	// Refused at once, without an operation that could only fail (Start
	// checks again under the VM's lock).
	if v.State == api.VMPaused {
		return d.beginVMOp(w, "vm.resume", name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
			return d.vms.Resume(ctx, name, run)
		})
	}
	if v.State != api.VMStopped {
		return vm.NotStopped(v)
	}
	return d.beginVMOp(w, "vm.start", name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
		return d.vms.Start(ctx, name, run)
	})
}

func (d *Daemon) restartVM(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := d.vms.Get(r.Context(), name); err != nil {
		return err
	}
	return d.beginVMOp(w, "vm.restart", name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
		run.Stage("stop")
		if _, err := d.vms.Stop(ctx, name); err != nil {
			return vm.VM{}, err
		}
		return d.vms.Start(ctx, name, run)
	})
}

func (d *Daemon) pauseVM(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, err := d.vms.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if v.State == api.VMPaused {
		return api.Errorf(api.CodeFailedPrecondition, "vm %s is already paused: resume it with `banger vm resume %s`", v.Name, v.Name)
	}
	if v.State != api.VMRunning {
		return api.Errorf(api.CodeFailedPrecondition, "vm %s is %s: only a running VM can be paused", v.Name, v.State)
	}
	return d.beginVMOp(w, "vm.pause", name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
		return d.vms.Pause(ctx, name, run)
	})
}

func (d *Daemon) resumeVM(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	v, err := d.vms.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if v.State != api.VMPaused {
		return vm.NotPaused(v)
	}
	return d.beginVMOp(w, "vm.resume", name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
		return d.vms.Resume(ctx, name, run)
	})
}

func (d *Daemon) forkVM(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req api.ForkVMRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v, err := d.vms.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if v.State != api.VMRunning {
		return api.Errorf(api.CodeFailedPrecondition, "vm %s is %s: only a running VM can be forked", v.Name, v.State)
	}
	if err := d.vms.ValidateFork(r.Context(), req); err != nil {
		return err
	}
	return d.beginVMOp(w, "vm.fork", name, func(ctx context.Context, run *operation.Run) (vm.VM, error) {
		return d.vms.Fork(ctx, name, req, run)
	})
}

func (d *Daemon) stopVM(w http.ResponseWriter, r *http.Request) error {
	ctx, crash := crashpoint.Track(r.Context(), "vm.stop")
	crash.Stage("stop")
	v, err := d.vms.Stop(ctx, r.PathValue("name"))
	crash.Done()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d.vms.API(r.Context(), v))
}

func (d *Daemon) deleteVM(w http.ResponseWriter, r *http.Request) error {
	ctx, crash := crashpoint.Track(r.Context(), "vm.delete")
	crash.Stage("delete")
	closePorts := d.closePortsAfter(ctx, r.PathValue("name"))
	err := d.vms.Delete(ctx, r.PathValue("name"))
	crash.Done()
	if err != nil {
		return err
	}
	closePorts()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) sshVM(w http.ResponseWriter, r *http.Request) error {
	info, err := d.vms.SSH(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// consoleVM streams the serial console log; with follow=true it keeps
// streaming what the guest writes until the client goes away.
func (d *Daemon) consoleVM(w http.ResponseWriter, r *http.Request) error {
	path, err := d.vms.Logs(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return api.Errorf(api.CodeNotFound, "no console log yet at %s: the vm has not booted", path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			rc.Flush()
			continue
		}
		if err != nil && err != io.EOF {
			return nil
		}
		if !follow {
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
		// The log may have been rotated (truncated) under us.
		if fi, err := f.Stat(); err == nil {
			if off, _ := f.Seek(0, io.SeekCurrent); off > fi.Size() {
				f.Seek(0, io.SeekStart)
			}
		}
	}
}

func (d *Daemon) verify(w http.ResponseWriter, r *http.Request) error {
	leaks, err := d.vms.Leaks(r.Context())
	if err != nil {
		return err
	}
	if d.net != nil { // nil: TestSeams stand in for the host network
		netLeaks, _, err := d.net.Leaks(r.Context())
		if err != nil {
			return err
		}
		for _, l := range netLeaks {
			leaks = append(leaks, api.Leak{Kind: l.Kind, What: l.Name, Detail: l.Reason + ": " + l.Fix})
		}
	}
	more, err := d.verifyState(r.Context())
	if err != nil {
		return err
	}
	leaks = append(leaks, more...)
	leaks = append(leaks, d.portLeaks(r.Context())...)
	if leaks == nil {
		leaks = []api.Leak{}
	}
	return writeJSON(w, http.StatusOK, api.VerifyReport{Leaks: leaks})
}

// verifyState finds what a crash can leave in the daemon's own state: a
// store that fails SQLite's integrity check, VMs in a transient state
// that no running operation explains, and what image operations left
// (staging directories while none runs, image directories without a
// record, temporary files).
func (d *Daemon) verifyState(ctx context.Context) ([]api.Leak, error) {
	var leaks []api.Leak
	problems, err := d.store.IntegrityCheck(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		leaks = append(leaks, api.Leak{Kind: "store", What: d.store.Path(), Detail: "integrity check: " + p})
	}
	busyVMs, imageOps := map[string]bool{}, false
	for _, op := range d.ops.Live() {
		switch {
		case strings.HasPrefix(op.Kind, "vm."):
			busyVMs[op.Target] = true
		case strings.HasPrefix(op.Kind, "image."):
			imageOps = true
		}
	}
	vms, err := d.vms.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range vms {
		if (v.State == api.VMCreating || v.State == api.VMDeleting) && !busyVMs[v.Name] {
			leaks = append(leaks, api.Leak{Kind: "vm", What: v.Name,
				Detail: fmt.Sprintf("%s, with no operation running on it: restart bangerd to finish cleaning it up", v.State)})
		}
	}
	left, err := d.images.Leftovers(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range left {
		if imageOps && strings.Contains(l.Why, "staging") {
			continue
		}
		leaks = append(leaks, api.Leak{Kind: "image", What: l.Path, Detail: l.Why + ": restart bangerd to remove it"})
	}
	return leaks, nil
}
