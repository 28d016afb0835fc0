package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/operation"
)

func (d *Daemon) listImages(w http.ResponseWriter, r *http.Request) error {
	imgs, err := d.images.List(r.Context())
	if err != nil {
		return err
	}
	out := api.ImageList{Images: []api.Image{}}
	for _, img := range imgs {
		if img.State == "removed" {
			continue
		}
		a, err := d.images.API(r.Context(), img)
		if err != nil {
			return err
		}
		out.Images = append(out.Images, a)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) getImage(w http.ResponseWriter, r *http.Request) error {
	img, err := d.images.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	a, err := d.images.API(r.Context(), img)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (d *Daemon) deleteImage(w http.ResponseWriter, r *http.Request) error {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	img, err := d.images.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := d.images.Remove(r.Context(), r.PathValue("name"), force); err != nil {
		return err
	}
	if err := d.vms.Unwarm(img.ID); err != nil {
		d.log.Warn("removing a removed image's warm snapshots", "image", img.Name, "error", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// beginImageOp starts an image operation whose result is the image.
func (d *Daemon) beginImageOp(w http.ResponseWriter, kind, target string, fn func(ctx context.Context, run *operation.Run) (image.Image, error)) error {
	op, err := d.ops.Begin(kind, target, func(ctx context.Context, run *operation.Run) (any, error) {
		img, err := fn(ctx, run)
		if err != nil {
			return nil, err
		}
		return d.images.API(context.WithoutCancel(ctx), img)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, op)
}

func (d *Daemon) registerImage(w http.ResponseWriter, r *http.Request) error {
	var req api.RegisterImageRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	// Bad input is answered now, before an operation exists.
	if err := d.images.ValidateRegister(r.Context(), req); err != nil {
		return err
	}
	return d.beginImageOp(w, "image.register", req.Name, func(ctx context.Context, run *operation.Run) (image.Image, error) {
		return d.images.Register(ctx, req, run)
	})
}

func (d *Daemon) promoteImage(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := d.images.Get(r.Context(), name); err != nil {
		return err
	}
	return d.beginImageOp(w, "image.promote", name, func(ctx context.Context, run *operation.Run) (image.Image, error) {
		img, _, err := d.images.Promote(ctx, name, run)
		return img, err
	})
}

func (d *Daemon) bootstrapImage(w http.ResponseWriter, r *http.Request) error {
	var req api.BootstrapImageRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := d.builder.ValidateBootstrap(r.Context(), &req); err != nil {
		return err
	}
	return d.beginImageOp(w, "image.bootstrap", req.Name, func(ctx context.Context, run *operation.Run) (image.Image, error) {
		return d.builder.Bootstrap(ctx, req, run)
	})
}

func (d *Daemon) buildImage(w http.ResponseWriter, r *http.Request) error {
	var req api.BuildImageRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if _, err := d.builder.ValidateBuild(r.Context(), req); err != nil {
		return err
	}
	return d.beginImageOp(w, "image.build", req.Name, func(ctx context.Context, run *operation.Run) (image.Image, error) {
		return d.builder.Build(ctx, req, run)
	})
}

func (d *Daemon) warmImage(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req api.WarmImageRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	// Bad input is answered now, before an operation exists.
	creq := api.CreateVMRequest{Image: name, VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes, Hypervisor: req.Hypervisor}
	if _, err := d.vms.ValidateCreate(r.Context(), &creq); err != nil {
		return err
	}
	return d.beginImageOp(w, "image.warm", name, func(ctx context.Context, run *operation.Run) (image.Image, error) {
		return d.vms.Warm(ctx, name, req, run)
	})
}

func (d *Daemon) unwarmImage(w http.ResponseWriter, r *http.Request) error {
	img, err := d.images.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := d.vms.Unwarm(img.ID); err != nil {
		return err
	}
	d.images.UsersChanged(r.Context(), img.ID) // announces the image, now without warm snapshots
	a, err := d.images.API(r.Context(), img)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

// autoWarm warms an image for a shape in the background after its first
// cold create (config vm.auto_warm), once per image and shape while the
// daemon runs: a warm that failed is not tried again at every create.
func (d *Daemon) autoWarm(img image.Image, req api.CreateVMRequest) {
	wreq := api.WarmImageRequest{VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB, DiskBytes: req.DiskBytes, Hypervisor: req.Hypervisor}
	key := fmt.Sprintf("%s/%d/%d/%d/%s", img.ID, req.VCPUs, req.MemoryMiB, req.DiskBytes, req.Hypervisor)
	if _, tried := d.warmTried.LoadOrStore(key, true); tried {
		return
	}
	if _, err := d.ops.Begin("image.warm", img.Name, func(ctx context.Context, run *operation.Run) (any, error) {
		out, err := d.vms.Warm(ctx, img.Name, wreq, run)
		if err != nil {
			return nil, err
		}
		return d.images.API(context.WithoutCancel(ctx), out)
	}); err != nil {
		d.log.Warn("warming an image after its first create", "image", img.Name, "error", err)
	}
}
