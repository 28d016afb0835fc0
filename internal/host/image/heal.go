package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/ext4img"
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
		if len(img.Artifacts) > 0 {
			// Force-removed while VMs used it: they still boot from its
			// files, which are kept as they are (never healed) until the
			// last of them is deleted.
			return img, false, nil
		}
		return img, false, api.Errorf(api.CodeFailedPrecondition,
			"image %s was removed and its files are gone, so nothing can boot from it; delete the VMs that use it (`banger image show %s` lists them)", img.Name, img.Name)
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
	// A seed made before seeds got big-file-system blocks is remade once.
	missingSeed := !img.Has(WorkSeed) || smallBlocks(img.Path(WorkSeed))
	oldUpper := img.Has(UpperSeed) && smallBlocks(img.Path(UpperSeed))
	stale := Fingerprint(img) != img.Fingerprint
	agent, err := c.AgentBuild(ctx)
	if err != nil {
		return img, false, err
	}
	oldAgent := img.Manifest.AgentVersion != agent
	// An image becomes a shared base once it has an upper-seed; that needs
	// an initramfs banger can rebuild with the overlay module.
	makeBase := !img.Has(UpperSeed) && c.canRestage(img) && c.Managed(img.ID, img.Path(Rootfs))
	if !missingSeed && !oldUpper && !stale && !oldAgent && !makeBase {
		return img, false, nil
	}
	p.Stage("heal image")
	restaged := false
	if oldAgent {
		// The agent is a companion of the daemon, never managed by hand: an
		// image carrying another build gets this one as the initramfs
		// /init and, while its rootfs is nobody's shared base yet, in its
		// rootfs. A shared base is never written (VMs have it open
		// read-only as their overlay's lower layer): there the initramfs
		// agent installs itself into each VM's root at boot, as it does on
		// every boot.
		if !img.Has(UpperSeed) {
			if err := c.InstallAgent(ctx, img.Path(Rootfs)); err != nil {
				return img, false, fmt.Errorf("updating banger-agent in image %s: %w", img.Name, err)
			}
			if err := c.redigest(&img, Rootfs, img.Path(Rootfs)); err != nil {
				return img, false, err
			}
		}
		if err := c.restageInitrd(ctx, &img); err != nil {
			return img, false, fmt.Errorf("updating banger-agent in image %s: %w", img.Name, err)
		}
		restaged = c.canRestage(img)
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
	if makeBase {
		if err := c.makeBase(ctx, &img, restaged); err != nil {
			return img, false, fmt.Errorf("healing image %s: %w", img.Name, err)
		}
	}
	if oldUpper {
		if err := c.remakeUpperSeed(ctx, &img); err != nil {
			return img, false, fmt.Errorf("healing image %s: %w", img.Name, err)
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
	if makeBase {
		what = append(what, "shared base")
	}
	if oldUpper {
		what = append(what, "upper-seed")
	}
	p.Detail("%s", strings.Join(append(what, "fingerprint"), " + "))
	c.Log.Info("image healed", "image", img.Name, "work_seed_made", missingSeed, "fingerprint_was_stale", stale, "agent_updated", oldAgent, "shared_base_made", makeBase)
	return img, true, nil
}

// canRestage reports whether banger can rebuild the image's initramfs: it
// has its kernel, its modules and an initramfs banger made. An initramfs
// the user registered (copied into the image's directory, so managed, but
// not banger's) is used as it is: banger staged an image's initramfs when
// the manifest names the agent in it (InitrdAgent) or, for images made
// before that was recorded, when the image was not registered.
func (c *Catalog) canRestage(img Image) bool {
	staged := img.Manifest.InitrdAgent != "" || img.Manifest.Source != "register"
	return c.Kernels != nil && img.Has(Modules) && (img.Has(Vmlinuz) || img.Has(Vmlinux)) &&
		c.Managed(img.ID, img.Path(Initrd)) && staged
}

// makeBase turns the image into a shared base: its initramfs is rebuilt
// (unless it just was) so it carries the overlay module, its rootfs is
// made readable to a jailed Firecracker's user (0644: the jailer
// hard-links it and refuses a mode that lets that user write; the image's
// directory stays 0700, the daemon's alone), and the upper-seed is made.
func (c *Catalog) makeBase(ctx context.Context, img *Image, restaged bool) error {
	if !restaged {
		if err := c.restageInitrd(ctx, img); err != nil {
			return err
		}
	}
	if err := os.Chmod(img.Path(Rootfs), 0o644); err != nil {
		return err
	}
	return c.remakeUpperSeed(ctx, img)
}

// remakeUpperSeed (re)makes the image's upper-seed. Only new VMs clone
// it; no VM has it open.
func (c *Catalog) remakeUpperSeed(ctx context.Context, img *Image) error {
	dst := filepath.Join(c.Dir(img.ID), UpperSeed.FileName())
	os.Remove(dst)
	if err := c.MakeUpperSeed(ctx, dst); err != nil {
		return err
	}
	return c.redigest(img, UpperSeed, dst)
}

// smallBlocks reports whether the seed at path was made with blocks
// smaller than ext4img.SeedBlockSize (by a banger whose VM create grew
// seeds on the host): grown in the guest to many GiB, such a file system
// carries four times the metadata. Seeds are banger's own files, never a
// guest's.
func smallBlocks(path string) bool {
	sb, err := ext4img.ReadSuperblock(path)
	return err == nil && sb.BlockSize < ext4img.SeedBlockSize
}

// MakeUpperSeed makes the upper-seed: a blank ext4 image (banger's init
// creates the overlay's upper and work directories on a VM's first boot).
// VM create grows each clone to the VM's disk size.
func (c *Catalog) MakeUpperSeed(ctx context.Context, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".upper-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	return c.Tools.MakeFromDir(ctx, dst, tmp, UpperSeedLabel, 64<<20)
}

// UpperSeedLabel is the ext4 label of every VM's upper disk.
const UpperSeedLabel = "banger-upper"

// restageInitrd rebuilds the image's initramfs around the current
// banger-agent (and kernelstage's module list, overlay included) when the
// image has its modules; a user-supplied initramfs is left as it is.
func (c *Catalog) restageInitrd(ctx context.Context, img *Image) error {
	if !c.canRestage(*img) {
		return nil
	}
	kernel := img.Path(Vmlinuz)
	if kernel == "" {
		kernel = img.Path(Vmlinux)
	}
	tmp, err := os.MkdirTemp(c.Dir(img.ID), ".initrd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := c.StageKernel(ctx, kernel, img.Path(Modules), "", tmp, &img.Manifest); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tmp, Initrd.FileName()), img.Path(Initrd)); err != nil {
		return err
	}
	return c.redigest(img, Initrd, img.Path(Initrd))
}

// StageKernel stages kernel and its modules into dir with the catalog's
// KernelStager (an initramfs whose /init is the catalog's agent) and
// records both in m: the kernel's description and the agent build the
// initramfs carries.
func (c *Catalog) StageKernel(ctx context.Context, kernel, modules, config, dir string, m *Manifest) error {
	agent, err := c.AgentBuild(ctx)
	if err != nil {
		return err
	}
	info, err := c.Kernels.Stage(ctx, kernel, modules, config, dir)
	if err != nil {
		return err
	}
	m.Kernel, m.InitrdAgent = info, agent
	return nil
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
