package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/api"
)

// save records the image's current state in the store and its directory.
func (c *Catalog) save(ctx context.Context, img Image) error {
	img.Fingerprint = Fingerprint(img)
	rec, err := toRecord(img)
	if err != nil {
		return err
	}
	if err := c.Store.UpdateImage(ctx, rec); err != nil {
		return err
	}
	c.changed(ctx, img.ID)
	if _, err := os.Stat(c.Dir(img.ID)); err == nil {
		return writeManifest(c.Dir(img.ID), img)
	}
	return nil
}

func (c *Catalog) redigest(img *Image, k Kind, path string) error {
	sum, size, err := Digest(path)
	if err != nil {
		return fmt.Errorf("digesting %s: %w", k, err)
	}
	img.Artifacts[k] = Artifact{Kind: k, Path: path, SHA256: sum, Size: size}
	return nil
}

// Promote makes an image fully managed: artifacts still outside the image
// directory are copied in (banger-agent is installed into a copied rootfs),
// a missing work-seed is made, and the fingerprint is recorded. Promoting a
// managed, complete image changes nothing.
func (c *Catalog) Promote(ctx context.Context, name string, p Progress) (Image, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	img, err := c.Get(ctx, name)
	if err != nil {
		return img, false, err
	}
	if img.State == "removed" {
		return img, false, api.Errorf(api.CodeFailedPrecondition, "image %s was removed", img.Name)
	}
	dir := c.Dir(img.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return img, false, err
	}
	changed := false
	p.Stage("copy artifacts")
	for _, k := range Kinds {
		a, ok := img.Artifacts[k]
		if !ok || c.Managed(img.ID, a.Path) {
			continue
		}
		if _, err := os.Stat(a.Path); err != nil {
			return img, false, api.Errorf(api.CodeFailedPrecondition,
				"image %s: its %s %s is gone (%v): register the image again", img.Name, k, a.Path, err)
		}
		dst := filepath.Join(dir, k.FileName())
		os.RemoveAll(dst)
		if k == Modules {
			err = copyTree(ctx, a.Path, dst)
		} else {
			err = copyFile(a.Path, dst)
		}
		if err != nil {
			return img, false, err
		}
		if k == Rootfs {
			if err := c.InstallAgent(ctx, dst); err != nil {
				return img, false, err
			}
		}
		if err := c.redigest(&img, k, dst); err != nil {
			return img, false, err
		}
		p.Logf("copied %s", k)
		changed = true
	}
	if !img.Has(WorkSeed) {
		p.Stage("work-seed")
		dst := filepath.Join(dir, WorkSeed.FileName())
		os.Remove(dst)
		if err := c.MakeWorkSeed(ctx, img.Path(Rootfs), dst); err != nil {
			return img, false, err
		}
		if err := c.redigest(&img, WorkSeed, dst); err != nil {
			return img, false, err
		}
		changed = true
	}
	if img.State != api.ImageReady || Fingerprint(img) != img.Fingerprint {
		changed = true
	}
	if !changed {
		p.Detail("already managed")
		return img, false, nil
	}
	p.Stage("fingerprint")
	img.State = api.ImageReady
	if err := c.save(ctx, img); err != nil {
		return img, false, err
	}
	img.Fingerprint = Fingerprint(img)
	return img, true, nil
}

// Repair is the lazy self-healing VM create runs before cloning: an older
// managed image without a work-seed gets one, and a stale fingerprint is
// recomputed; both are recorded (with the time) so it happens once. An
// unmanaged image must be promoted first, and a damaged one (artifacts
// missing or resized behind banger's back) is an error naming the fix.
func (c *Catalog) Repair(ctx context.Context, name string, p Progress) (Image, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	img, err := c.Get(ctx, name)
	if err != nil {
		return img, false, err
	}
	if img.State == "removed" {
		return img, false, api.Errorf(api.CodeFailedPrecondition,
			"image %s was force-removed while VMs used it: its kernel and disks are gone, so nothing can boot from it; delete the VMs that use it (`banger image show %s` lists them)", img.Name, img.Name)
	}
	if img.State != api.ImageReady {
		return img, false, api.Errorf(api.CodeFailedPrecondition,
			"image %s is %s: run `banger image promote %s` to copy its files into banger's store first", img.Name, img.State, img.Name)
	}
	for _, k := range Kinds {
		a, ok := img.Artifacts[k]
		if !ok {
			continue
		}
		fi, err := os.Stat(a.Path)
		if err != nil {
			return img, false, api.Errorf(api.CodeFailedPrecondition,
				"image %s is damaged: its %s %s is missing: remove it (`banger image rm %s`) and create it again", img.Name, k, a.Path, img.Name)
		}
		if !fi.IsDir() && fi.Size() != a.Size {
			return img, false, api.Errorf(api.CodeFailedPrecondition,
				"image %s is damaged: its %s changed size (%d, recorded %d): remove it and create it again", img.Name, k, fi.Size(), a.Size)
		}
	}
	missingSeed := !img.Has(WorkSeed)
	stale := Fingerprint(img) != img.Fingerprint
	agent, err := AgentVersion(ctx, c.AgentBin)
	if err != nil {
		return img, false, err
	}
	oldAgent := img.Manifest.AgentVersion != agent
	if !missingSeed && !stale && !oldAgent {
		return img, false, nil
	}
	p.Stage("heal image")
	if oldAgent {
		// The agent is a companion of the daemon, never managed by hand: an
		// image carrying another build gets this one, in its rootfs and as
		// the initramfs /init.
		if err := c.upgradeAgent(ctx, &img); err != nil {
			return img, false, fmt.Errorf("updating banger-agent in image %s: %w", img.Name, err)
		}
		img.Manifest.AgentVersion = agent
	}
	if missingSeed {
		dst := filepath.Join(c.Dir(img.ID), WorkSeed.FileName())
		os.Remove(dst)
		if err := c.MakeWorkSeed(ctx, img.Path(Rootfs), dst); err != nil {
			return img, false, fmt.Errorf("healing image %s: %w", img.Name, err)
		}
		if err := c.redigest(&img, WorkSeed, dst); err != nil {
			return img, false, err
		}
	}
	img.Manifest.HealedAt = c.now()
	if err := c.save(ctx, img); err != nil {
		return img, false, err
	}
	img.Fingerprint = Fingerprint(img)
	var what []string
	if missingSeed {
		what = append(what, "work-seed")
	}
	if oldAgent {
		what = append(what, "agent")
	}
	p.Detail("%s", strings.Join(append(what, "fingerprint"), " + "))
	c.Log.Info("image healed", "image", img.Name, "work_seed_made", missingSeed, "fingerprint_was_stale", stale, "agent_updated", oldAgent)
	return img, true, nil
}

// upgradeAgent writes the current banger-agent into the image's rootfs and,
// when the image has its modules, rebuilds the initramfs around it.
func (c *Catalog) upgradeAgent(ctx context.Context, img *Image) error {
	rootfs := img.Path(Rootfs)
	if err := c.InstallAgent(ctx, rootfs); err != nil {
		return err
	}
	if err := c.redigest(img, Rootfs, rootfs); err != nil {
		return err
	}
	kernel := img.Path(Vmlinuz)
	if kernel == "" {
		kernel = img.Path(Vmlinux)
	}
	if !img.Has(Modules) || kernel == "" || !c.Managed(img.ID, img.Path(Initrd)) {
		return nil // a user-supplied initramfs is left as it is
	}
	tmp, err := os.MkdirTemp(c.Dir(img.ID), ".initrd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := c.Kernels.Stage(ctx, kernel, img.Path(Modules), "", tmp); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tmp, Initrd.FileName()), img.Path(Initrd)); err != nil {
		return err
	}
	return c.redigest(img, Initrd, img.Path(Initrd))
}

// Problem is one thing wrong with an image.
type Problem struct {
	Image  string
	Detail string
	Fix    string
}

// Verify checks that every artifact is present with its recorded size
// and, when deep, its recorded digest.
func (c *Catalog) Verify(img Image, deep bool) []Problem {
	var out []Problem
	bad := func(detail, fix string) { out = append(out, Problem{Image: img.Name, Detail: detail, Fix: fix}) }
	if img.State == "removed" {
		return nil
	}
	for _, k := range Kinds {
		a, ok := img.Artifacts[k]
		if !ok {
			continue
		}
		fi, err := os.Stat(a.Path)
		if err != nil {
			bad(fmt.Sprintf("%s %s is missing", k, a.Path), "remove the image and create it again")
			continue
		}
		if !fi.IsDir() && fi.Size() != a.Size {
			bad(fmt.Sprintf("%s changed size: %d bytes, recorded %d", k, fi.Size(), a.Size), "remove the image and create it again")
			continue
		}
		if deep {
			sum, _, err := Digest(a.Path)
			if err != nil || sum != a.SHA256 {
				bad(fmt.Sprintf("%s digest does not match the record", k), "remove the image and create it again")
			}
		}
	}
	if img.State == api.ImageUnmanaged {
		bad("references files outside banger's store", "run `banger image promote "+img.Name+"`")
	} else if !img.Has(WorkSeed) || Fingerprint(img) != img.Fingerprint {
		bad("made by an older banger (no work-seed or an old fingerprint)", "nothing: the next `vm create` heals it, or run `banger image promote "+img.Name+"`")
	}
	return out
}
