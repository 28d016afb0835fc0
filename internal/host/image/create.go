package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/names"
	"github.com/bangerdev/banger/internal/shared/atomicfile"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
	"golang.org/x/sys/unix"
)

// Staging is an image under construction: a private directory that becomes
// the image directory only when everything in it is complete.
type Staging struct {
	ID  string
	Dir string
	// External records artifacts that stay where they are (--link).
	External map[Kind]string
}

// Path is where the artifact of kind k goes in the staging directory.
func (s *Staging) Path(k Kind) string { return filepath.Join(s.Dir, k.FileName()) }

// newImageID returns a fresh image id.
func newImageID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "img-" + hex.EncodeToString(b)
}

// CheckName validates a new image's name and that it is free.
func (c *Catalog) CheckName(ctx context.Context, name string) error {
	if err := names.Validate(name); err != nil {
		return api.FieldErrorf("name", names.Rule, "%v", err)
	}
	taken, err := c.Store.ImageNameTaken(ctx, name)
	if err != nil {
		return err
	}
	if taken {
		return &api.Error{Code: api.CodeAlreadyExists, Field: "name", Allowed: "a name no other image has",
			Message: fmt.Sprintf("an image named %q already exists: pick another name, or remove it with `banger image rm %s`", name, name)}
	}
	return nil
}

// Spec describes the image create should make.
type Spec struct {
	Name     string
	ParentID string
	State    string
	// Fill puts the artifacts into the staging directory (or records them
	// in External) and completes the manifest.
	Fill func(ctx context.Context, st *Staging, m *Manifest) error
	// Need is the least space Fill will write (RegisterNeed, or a
	// build's rootfs at its full, grown size): with
	// less free, Create refuses the image before anything is written. 0
	// skips the check; a build that fills the disk anyway is reported as
	// such (noSpace).
	Need int64
}

// Create builds an image through spec.Fill in a staging directory, then
// digests every artifact, fingerprints the image, and commits it: the
// directory is renamed into place and the record inserted. Any failure
// removes what was made; a crash leaves only a staging directory, which
// CleanStaging removes at the next daemon start.
func (c *Catalog) Create(ctx context.Context, spec Spec, p Progress) (Image, error) {
	if err := c.CheckName(ctx, spec.Name); err != nil {
		return Image{}, err
	}
	if err := os.MkdirAll(c.Root, 0o700); err != nil {
		return Image{}, err
	}
	if err := c.checkNeed(spec.Name, spec.Need); err != nil {
		return Image{}, err
	}
	st := &Staging{ID: newImageID(), External: map[Kind]string{}}
	st.Dir = filepath.Join(c.Root, ".staging-"+st.ID)
	if err := os.Mkdir(st.Dir, 0o700); err != nil {
		return Image{}, err
	}
	committed := false
	defer func() {
		if !committed {
			if err := removeTree(st.Dir); err != nil {
				c.Log.Error("removing a failed image build", "dir", st.Dir, "error", err)
			}
		}
	}()
	freeBefore := freeSpace(c.Root)
	m := Manifest{Schema: 1}
	if err := spec.Fill(ctx, st, &m); err != nil {
		return Image{}, c.noSpace(err, spec.Name, freeBefore)
	}
	if m.AgentVersion == "" {
		v, err := c.AgentBuild(ctx)
		if err != nil {
			return Image{}, err
		}
		m.AgentVersion = v
	}

	p.Stage("fingerprint")
	final := c.Dir(st.ID)
	img := Image{ID: st.ID, Name: spec.Name, ParentID: spec.ParentID, State: spec.State, Manifest: m,
		Artifacts: map[Kind]Artifact{}, CreatedAt: c.now()}
	if img.State == "" {
		img.State = api.ImageReady
	}
	for _, k := range Kinds {
		src, final := st.Path(k), filepath.Join(final, k.FileName())
		if ext, ok := st.External[k]; ok {
			src, final = ext, ext
		} else if _, err := os.Lstat(src); err != nil {
			continue
		}
		sum, size, err := Digest(src)
		if err != nil {
			return Image{}, fmt.Errorf("digesting %s: %w", k, err)
		}
		img.Artifacts[k] = Artifact{Kind: k, Path: final, SHA256: sum, Size: size}
	}
	for _, k := range []Kind{Rootfs, Initrd} {
		if !img.Has(k) {
			return Image{}, fmt.Errorf("image %s has no %s: cannot boot", spec.Name, k)
		}
	}
	if !img.Has(Vmlinux) && !img.Has(Vmlinuz) {
		return Image{}, fmt.Errorf("image %s has no kernel", spec.Name)
	}
	img.Fingerprint = Fingerprint(img)
	p.Detail("%s", img.Fingerprint[:19])
	if err := writeManifest(st.Dir, img); err != nil {
		return Image{}, c.noSpace(err, spec.Name, freeBefore)
	}

	p.Stage("register")
	if err := os.Rename(st.Dir, final); err != nil {
		return Image{}, err
	}
	crashpoint.Here(ctx) // a directory without its record: removed at the next start
	committed = true
	rec, err := toRecord(img)
	if err == nil {
		err = c.Store.CreateImage(ctx, rec)
	}
	if err != nil {
		os.RemoveAll(final)
		return Image{}, err
	}
	c.Log.Info("image created", "image", img.Name, "id", img.ID, "fingerprint", img.Fingerprint)
	c.changed(ctx, img.ID)
	return img, nil
}

// writeManifest writes manifest.json: the image's record as it stands, so
// an image directory explains itself without the database.
func writeManifest(dir string, img Image) error {
	doc := struct {
		ID          string            `json:"id"`
		Name        string            `json:"name"`
		Fingerprint string            `json:"fingerprint"`
		Manifest    Manifest          `json:"manifest"`
		Artifacts   map[Kind]Artifact `json:"artifacts"`
	}{img.ID, img.Name, img.Fingerprint, img.Manifest, img.Artifacts}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, manifest), append(b, '\n'), 0o600, 0)
}

// AgentVersion asks the banger-agent binary for its build id, the agent
// version recorded in (and fingerprinted into) every image.
func AgentVersion(ctx context.Context, agentBin string) (string, error) {
	return agentVersion(ctx, agentBin)
}

// agentBuild is AgentVersion's answer for one state of the binary.
type agentBuild struct {
	dev, ino, size uint64
	mtime          int64
	version        string
}

// AgentBuild is AgentVersion of the catalog's AgentBin, asked again only
// when the file changed (another inode, size or mtime): every VM create
// and start needs it, and running the binary costs milliseconds.
func (c *Catalog) AgentBuild(ctx context.Context) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(c.AgentBin, &st); err != nil || c.AgentBin == "" {
		return AgentVersion(ctx, c.AgentBin)
	}
	now := agentBuild{dev: st.Dev, ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim.Nano()}
	c.agentMu.Lock()
	defer c.agentMu.Unlock()
	if b := c.agentBuild; b.version != "" && b.dev == now.dev && b.ino == now.ino && b.size == now.size && b.mtime == now.mtime {
		return b.version, nil
	}
	v, err := AgentVersion(ctx, c.AgentBin)
	if err != nil {
		return "", err
	}
	now.version = v
	c.agentBuild = now
	return v, nil
}

func agentVersion(ctx context.Context, agentBin string) (string, error) {
	if agentBin == "" {
		return "", errors.New("no banger-agent binary configured")
	}
	out, err := exec.CommandContext(ctx, agentBin, "version", "--json").Output()
	if err != nil {
		return "", api.Errorf(api.CodeFailedPrecondition,
			"the banger-agent companion binary at %s does not run (%v): reinstall banger with `make install`", agentBin, err)
	}
	var info buildinfo.Info
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("reading banger-agent version: %w", err)
	}
	return info.Version + "+" + info.BuildID, nil
}
