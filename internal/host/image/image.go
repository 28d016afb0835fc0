// Package image owns banger's managed images: the on-disk store of boot
// sets (vmlinux, compressed kernel, initrd, modules, rootfs, work-seed),
// their digests, manifests and fingerprints, and the operations on them:
// register, promote, self-heal, verify and remove. Bootstrapping and
// building new images (package imagebuild) end in this package's create.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/ext4img"
	"github.com/bangerdev/banger/internal/host/store"
)

// Kind names an artifact of the boot set.
type Kind string

// Artifact kinds and their file names inside an image directory.
const (
	Vmlinux  Kind = "vmlinux"   // uncompressed ELF kernel (Firecracker)
	Vmlinuz  Kind = "vmlinuz"   // compressed bzImage (QEMU)
	Initrd   Kind = "initrd"    // initramfs with banger-agent as /init
	Modules  Kind = "modules"   // lib/modules/<release> tree
	Rootfs   Kind = "rootfs"    // ext4 root filesystem
	WorkSeed Kind = "work-seed" // ext4 image of the guest's /root
	// UpperSeed is a blank ext4 image each VM's upper disk is cloned
	// from: the writable layer of its overlay root over the shared,
	// read-only rootfs. An image has one once it can serve as a shared
	// base (Repair makes it); from then on its rootfs is never written.
	UpperSeed Kind = "upper-seed"
	manifest       = "manifest.json" // written beside the artifacts
)

// Kinds lists every artifact kind in a fixed order.
var Kinds = []Kind{Vmlinux, Vmlinuz, Initrd, Modules, Rootfs, WorkSeed, UpperSeed}

// FileName is the artifact's name inside an image directory.
func (k Kind) FileName() string {
	switch k {
	case Initrd:
		return "initrd.img"
	case Rootfs:
		return "rootfs.ext4"
	case WorkSeed:
		return "work-seed.ext4"
	case UpperSeed:
		return "upper-seed.ext4"
	default:
		return string(k)
	}
}

// Artifact is one recorded artifact.
type Artifact struct {
	Kind   Kind
	Path   string
	SHA256 string
	Size   int64
}

// Manifest is an image's metadata, stored as JSON in the store and in the
// image directory.
type Manifest struct {
	Schema       int            `json:"schema"`
	Distro       string         `json:"distro,omitempty"`
	Suite        string         `json:"suite,omitempty"`
	Libc         string         `json:"libc,omitempty"`
	AgentVersion string         `json:"agent_version,omitempty"`
	Source       string         `json:"source,omitempty"`
	Kernel       api.KernelInfo `json:"kernel"`
	Services     []api.Service  `json:"services,omitempty"`
	Probes       []api.Probe    `json:"probes,omitempty"`
	Provisioning []string       `json:"provisioning,omitempty"`
	HealedAt     time.Time      `json:"healed_at,omitzero"`
	// InitrdAgent is the agent build (AgentVersion's form) the image's
	// initramfs carries as /init, when banger staged it (StageKernel);
	// empty for an initramfs banger did not make. A VM's boot payload
	// leaves the agent out when it is the daemon's (internal/host/vm).
	InitrdAgent string `json:"initrd_agent,omitempty"`
}

// Image is a registered image.
type Image struct {
	ID          string
	Name        string
	ParentID    string
	State       string
	Fingerprint string
	Manifest    Manifest
	Artifacts   map[Kind]Artifact
	CreatedAt   time.Time
}

// Has reports whether the image records an artifact of kind k.
func (img Image) Has(k Kind) bool { _, ok := img.Artifacts[k]; return ok }

// Path returns the recorded path of an artifact ("" when absent).
func (img Image) Path(k Kind) string { return img.Artifacts[k].Path }

// Progress is how long work reports stages; *operation.Run satisfies it.
type Progress interface {
	Stage(name string)
	Detail(format string, args ...any)
	Logf(format string, args ...any)
}

// Catalog is the image store: a directory of image directories plus their
// records in the database.
type Catalog struct {
	// Root is $XDG_DATA_HOME/banger/images.
	Root  string
	Store *store.Store
	Tools *ext4img.Tools
	// AgentBin is the banger-agent companion binary installed into images.
	AgentBin string
	// Kernels stages kernels; AgentFiles lists the agent's files for a
	// rootfs.
	Kernels    KernelStager
	AgentFiles AgentInstaller
	Log        *slog.Logger
	Now        func() time.Time

	// OnChange, when set, hears of every change the catalog records for
	// an image (created, healed, promoted, removed), after it is stored:
	// the image as GET /v1/images/{name} shows it, or Removed. The daemon
	// feeds its event hub with it.
	OnChange func(api.Event)
	// Warm, when set, lists an image's warm snapshots for API (the VM
	// manager keeps them).
	Warm func(imageID string) []api.WarmSnapshot

	// mu serialises promote and repair, so two VM creates never heal the
	// same image at once.
	mu sync.Mutex

	agentMu    sync.Mutex
	agentBuild agentBuild // AgentBuild's answer for the binary as it was
}

func (c *Catalog) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// Dir is the managed directory of the image with that id.
func (c *Catalog) Dir(id string) string { return filepath.Join(c.Root, id) }

// Managed reports whether path lies inside the image's own directory.
func (c *Catalog) Managed(id, path string) bool {
	rel, err := filepath.Rel(c.Dir(id), path)
	return err == nil && filepath.IsLocal(rel)
}

func fromRecord(r store.Image) (Image, error) {
	img := Image{ID: r.ID, Name: r.Name, ParentID: r.ParentID, State: r.State, Fingerprint: r.Fingerprint,
		CreatedAt: r.CreatedAt, Artifacts: map[Kind]Artifact{}}
	if err := json.Unmarshal([]byte(r.Manifest), &img.Manifest); err != nil {
		return img, fmt.Errorf("image %s: corrupt manifest: %w", r.Name, err)
	}
	for _, a := range r.Artifacts {
		img.Artifacts[Kind(a.Kind)] = Artifact{Kind: Kind(a.Kind), Path: a.Path, SHA256: a.SHA256, Size: a.Size}
	}
	return img, nil
}

func toRecord(img Image) (store.Image, error) {
	m, err := json.Marshal(img.Manifest)
	if err != nil {
		return store.Image{}, err
	}
	r := store.Image{ID: img.ID, Name: img.Name, ParentID: img.ParentID, State: img.State, Distro: img.Manifest.Distro,
		Fingerprint: img.Fingerprint, Manifest: string(m)}
	for _, k := range Kinds {
		if a, ok := img.Artifacts[k]; ok {
			r.Artifacts = append(r.Artifacts, store.Artifact{Kind: string(k), Path: a.Path, SHA256: a.SHA256, Size: a.Size})
		}
	}
	return r, nil
}

// List returns every image by name.
func (c *Catalog) List(ctx context.Context) ([]Image, error) {
	recs, err := c.Store.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(recs))
	for _, r := range recs {
		img, err := fromRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// Get returns the image with that name or id; a missing one is an
// api.ErrNotFound that says how to see what exists.
func (c *Catalog) Get(ctx context.Context, name string) (Image, error) {
	r, err := c.Store.GetImage(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return Image{}, api.Errorf(api.CodeNotFound,
			"no image named %q: see `banger image list`, or make one with `banger image bootstrap debian`", name)
	}
	if err != nil {
		return Image{}, err
	}
	return fromRecord(r)
}

// API converts an image to its wire form.
func (c *Catalog) API(ctx context.Context, img Image) (api.Image, error) {
	out := api.Image{
		ID: img.ID, Name: img.Name, State: img.State, Distro: img.Manifest.Distro, Suite: img.Manifest.Suite,
		Libc: img.Manifest.Libc, AgentVersion: img.Manifest.AgentVersion, Source: img.Manifest.Source,
		Fingerprint: img.Fingerprint, Kernel: img.Manifest.Kernel, Services: img.Manifest.Services,
		Probes: img.Manifest.Probes, Provisioning: img.Manifest.Provisioning, CreatedAt: img.CreatedAt,
		HealedAt: img.Manifest.HealedAt, Artifacts: []api.Artifact{},
	}
	if img.ParentID != "" {
		if p, err := c.Store.GetImage(ctx, img.ParentID); err == nil {
			out.Parent = p.Name
		} else {
			out.Parent = img.ParentID
		}
	}
	for _, k := range Kinds {
		if a, ok := img.Artifacts[k]; ok {
			out.Artifacts = append(out.Artifacts, api.Artifact{Kind: string(k), Path: a.Path, SHA256: a.SHA256, Size: a.Size})
		}
	}
	used, err := c.Store.VMsUsingImage(ctx, img.ID)
	if err != nil {
		return out, err
	}
	out.UsedBy = used
	sort.Strings(out.UsedBy)
	if c.Warm != nil {
		out.Warm = c.Warm(img.ID)
	}
	return out, nil
}

// Remove deletes an image and its directory. It refuses while VMs or child
// images use it, unless force. A forced removal of an image VMs still use
// keeps its files (they boot from them: the kernel, the initramfs and, for
// a shared base, the root filesystem) under a "removed" record that no new
// VM can use, until ReleaseRemoved finds the last of those VMs gone; child
// images hold their own copies, so for them alone the files go at once.
func (c *Catalog) Remove(ctx context.Context, name string, force bool) error {
	img, err := c.Get(ctx, name)
	if err != nil {
		return err
	}
	used, err := c.Store.VMsUsingImage(ctx, img.ID)
	if err != nil {
		return err
	}
	children, err := c.children(ctx, img.ID)
	if err != nil {
		return err
	}
	users := append(append([]string{}, used...), children...)
	if len(users) > 0 && !force {
		// force is the query parameter of DELETE /v1/images/{name}.
		return &api.Error{Code: api.CodeFailedPrecondition, Field: "force", Allowed: "true",
			Message: fmt.Sprintf("image %s is used by %v: delete those first, or remove it with force (no new VM can use it then; its files stay until the last of its VMs is deleted)", img.Name, users)}
	}
	if len(users) == 0 {
		if err := c.Store.DeleteImage(ctx, img.ID); err != nil {
			return err
		}
		c.removed(img)
		return removeTree(c.Dir(img.ID))
	}
	img.State = "removed"
	if len(used) == 0 {
		img.Artifacts = map[Kind]Artifact{} // only child images: nothing boots from the files
	}
	rec, err := toRecord(img)
	if err != nil {
		return err
	}
	if err := c.Store.UpdateImage(ctx, rec); err != nil {
		return err
	}
	c.removed(img)
	if len(used) == 0 {
		return removeTree(c.Dir(img.ID))
	}
	return nil
}

// ReleaseRemoved finishes a forced removal once no VM uses the image: its
// files go, and its record too unless child images still name it. It does
// nothing for an image that is not removed or still has VMs.
func (c *Catalog) ReleaseRemoved(ctx context.Context, id string) error {
	img, err := c.Get(ctx, id)
	if err != nil || img.State != "removed" {
		return nil
	}
	used, err := c.Store.VMsUsingImage(ctx, id)
	if err != nil || len(used) > 0 {
		return err
	}
	children, err := c.children(ctx, id)
	if err != nil {
		return err
	}
	if len(children) == 0 {
		err = c.Store.DeleteImage(ctx, id)
	} else if len(img.Artifacts) > 0 {
		img.Artifacts = map[Kind]Artifact{}
		rec, rerr := toRecord(img)
		if rerr != nil {
			return rerr
		}
		err = c.Store.UpdateImage(ctx, rec)
	}
	if err != nil {
		return err
	}
	return removeTree(c.Dir(id))
}

func (c *Catalog) children(ctx context.Context, id string) ([]string, error) {
	all, err := c.Store.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range all {
		if r.ParentID == id {
			out = append(out, "image "+r.Name)
		}
	}
	return out, nil
}

// CleanStaging removes half-built image directories a crash left behind.
// The daemon calls it at start, before any image work can run.
func (c *Catalog) CleanStaging() ([]string, error) {
	entries, err := os.ReadDir(c.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) > 9 && e.Name()[:9] == ".staging-" {
			p := filepath.Join(c.Root, e.Name())
			if err := removeTree(p); err != nil {
				return removed, err
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}
