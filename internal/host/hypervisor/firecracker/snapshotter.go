package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// The driver's hypervisor.Snapshotter, on PUT /snapshot/create and PUT
// /snapshot/load (docs/snapshotting/snapshot-support.md).
//
// A Firecracker snapshot records the microVM's devices as they were
// configured: each drive's path_on_host, the TAP's host_dev_name and the
// vsock's uds_path, as the saved Firecracker was given them. The restoring
// Firecracker opens them again by those paths ("at the same relative
// paths", docs/snapshotting/snapshot-support.md says); the load can
// override the TAP (network_overrides, from v1.12.0) and the vsock socket
// (vsock_override, from v1.16.0), never a drive. So the driver gives every
// VM the same paths for its own files, and a state saved by one VM
// restores into another (a clone, with its own disks):
//
//   - Under the jailer the paths are inside each VM's chroot
//     (/disk-root.img, /disk-work.img, /vsock.sock), which holds that VM's
//     own files. The state files are hard-linked into the chroot
//     read-only, as a shared read-only disk is.
//   - Without the jailer the paths are relative to Firecracker's working
//     directory, the VM's runtime directory (disk-root.img, disk-work.img:
//     symbolic links to the VM's disks; vsock.sock), so a clone's
//     Firecracker, started in the clone's directory, opens the clone's
//     files. The state files are opened where they are.
//   - A different TAP goes through network_overrides; a release without
//     them needs the saved VM's TAP name, and Restore says so.
//
// Save records the paths (from GET /vm/config) beside the state, in
// StateInfoFile, so that Restore decides before starting anything: a
// state whose drives were given by other paths (absolute ones, say) is
// refused with the fix (run Firecracker under the jailer), a vsock socket
// elsewhere is moved with vsock_override or refused (upgrade Firecracker),
// and a state saved under the jailer restores only under it, and the
// reverse. Firecracker maps the memory file privately (MAP_PRIVATE) and
// opens both files read-only: many VMs restore one state at once, and the
// state's directory is only read. A restored VM keeps the memory file
// mapped for its whole life, reading pages from it as the guest touches
// them: removing the state is harmless (its blocks stay allocated until
// the last VM restored from it ends), but writing into the file would
// change every such guest's memory, so a state is never rewritten in
// place.

// Files of a saved state, in the directory Save writes.
const (
	// StateFile is Firecracker's microVM state (snapshot_path).
	StateFile = "vmstate"
	// MemoryFile is the guest memory (mem_file_path / mem_backend).
	MemoryFile = "memory"
	// StateInfoFile is the driver's record of the saved VM: its
	// Firecracker release and the paths its devices were opened by.
	StateInfoFile = "firecracker-state.json"
)

// Names of a jailed VM's snapshot files in its chroot: those Save has
// Firecracker write, and the links Restore makes. They differ so that a
// restored VM, whose chroot holds the links, can be saved again.
const (
	jailSaveState     = "saving.vmstate"
	jailSaveMemory    = "saving.memory"
	jailRestoreState  = "snapshot.vmstate"
	jailRestoreMemory = "snapshot.memory"
)

// stateInfoFormat is the version of StateInfoFile's layout.
const stateInfoFormat = 1

// stateInfo is StateInfoFile.
type stateInfo struct {
	Format int `json:"format"`
	// Version is the release that wrote the state.
	Version   string       `json:"firecracker_version"`
	Jailed    bool         `json:"jailed"`
	VCPUs     int          `json:"vcpus"`
	MemoryMiB int          `json:"memory_mib"`
	Drives    []savedDrive `json:"drives"`
	// TAP is the host_dev_name of the guest's eth0; "" without a NIC.
	TAP string `json:"tap,omitempty"`
	// Vsock is the vsock device's uds_path.
	Vsock string `json:"vsock,omitempty"`
}

// savedDrive is a drive as the saved Firecracker opened it.
type savedDrive struct {
	ID       string `json:"id"`
	Path     string `json:"path"` // inside the chroot when jailed
	ReadOnly bool   `json:"read_only"`
}

// vmConfig is the part of GET /vm/config (FullVmConfiguration, since
// v1.1.0) that a restore depends on.
type vmConfig struct {
	Drives []struct {
		DriveID    string `json:"drive_id"`
		PathOnHost string `json:"path_on_host"`
		IsReadOnly bool   `json:"is_read_only"`
	} `json:"drives"`
	NetworkInterfaces []struct {
		IfaceID     string `json:"iface_id"`
		HostDevName string `json:"host_dev_name"`
	} `json:"network-interfaces"`
	Vsock *struct {
		UDSPath string `json:"uds_path"`
	} `json:"vsock"`
	MachineConfig struct {
		VCPUCount  int `json:"vcpu_count"`
		MemSizeMiB int `json:"mem_size_mib"`
	} `json:"machine-config"`
}

var _ hypervisor.Snapshotter = (*Driver)(nil)

// Save pauses the VM (PATCH /vm Paused), syncs its disk files, and has
// Firecracker write a full snapshot: StateFile and MemoryFile in dir, with
// StateInfoFile beside them. The VM stays paused, whether Save succeeds
// or fails.
//
// A jailed Firecracker writes the snapshot inside its chroot, as its own
// user; Save copies the files into dir as new files (the daemon's, group
// the jailed user's, mode 0640: a later jailed VM reads them and cannot
// write them) and removes them from the chroot, so that no file the jailed
// process ever held open is one other VMs load. Without the jailer
// Firecracker writes into dir directly and the files are made 0600.
func (d *Driver) Save(ctx context.Context, h hypervisor.Handle, dir string) (hypervisor.Saved, error) {
	fail := func(err error) (hypervisor.Saved, error) {
		return hypervisor.Saved{}, fmt.Errorf("firecracker: saving the VM of pid %d to %s: %w", h.PID, dir, err)
	}
	if !filepath.IsAbs(dir) {
		return fail(errors.New("the state directory is not an absolute path"))
	}
	if err := d.Pause(ctx, h); err != nil {
		return hypervisor.Saved{}, err
	}
	v, err := d.runningVersion(ctx, h)
	if err != nil {
		return fail(err)
	}
	var cfg vmConfig
	if err := d.api(h).do(ctx, http.MethodGet, "/vm/config", nil, &cfg); err != nil {
		return fail(fmt.Errorf("reading the VM's configuration: %w", err))
	}
	info := stateInfo{
		Format:    stateInfoFormat,
		Version:   v.String(),
		VCPUs:     cfg.MachineConfig.VCPUCount,
		MemoryMiB: cfg.MachineConfig.MemSizeMiB,
	}
	// A jailed Firecracker's paths are inside its chroot, the directory
	// of its API socket; an unjailed one's relative paths are from its
	// working directory, the same.
	fcDir, root := filepath.Dir(h.ControlSocket), ""
	if jailOf(d.Jail.chrootBase(), h.ControlSocket) != "" {
		root = fcDir
		info.Jailed = true
	}
	hostPath := func(p string) string {
		if root == "" && filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(fcDir, p)
	}
	for _, dr := range cfg.Drives {
		info.Drives = append(info.Drives, savedDrive{ID: dr.DriveID, Path: dr.PathOnHost, ReadOnly: dr.IsReadOnly})
	}
	for _, n := range cfg.NetworkInterfaces {
		if n.IfaceID == NICID {
			info.TAP = n.HostDevName
		}
	}
	if cfg.Vsock != nil {
		info.Vsock = cfg.Vsock.UDSPath
	}
	// Firecracker's snapshot leaves the drives' writes in the host's page
	// cache; the state is only the VM at one instant if they reach the
	// disk with it.
	for _, dr := range info.Drives {
		if err := syncFile(hostPath(dr.Path)); err != nil {
			return fail(fmt.Errorf("syncing disk %s: %w", dr.ID, err))
		}
	}
	p := SnapshotCreateParams{SnapshotPath: filepath.Join(dir, StateFile), MemFilePath: filepath.Join(dir, MemoryFile), Type: FullSnapshot}
	if root != "" {
		p.SnapshotPath, p.MemFilePath = "/"+jailSaveState, "/"+jailSaveMemory
		hypervisor.RemoveFiles(hostPath(p.SnapshotPath), hostPath(p.MemFilePath)) // a failed Save's
	}
	if err := d.CreateSnapshot(ctx, h, p); err != nil {
		if root != "" {
			hypervisor.RemoveFiles(hostPath(p.SnapshotPath), hostPath(p.MemFilePath))
		}
		return hypervisor.Saved{}, err
	}
	if root != "" {
		var st unix.Stat_t
		if err := unix.Stat(root, &st); err != nil {
			return fail(err)
		}
		for _, f := range []struct{ src, dst string }{{p.SnapshotPath, StateFile}, {p.MemFilePath, MemoryFile}} {
			err := copyFresh(filepath.Join(dir, f.dst), hostPath(f.src), int(st.Gid))
			os.Remove(hostPath(f.src))
			if err != nil {
				return fail(fmt.Errorf("copying %s out of the jail: %w", f.dst, err))
			}
		}
	} else {
		for _, f := range []string{StateFile, MemoryFile} {
			if err := os.Chmod(filepath.Join(dir, f), 0o600); err != nil {
				return fail(err)
			}
			if err := syncFile(filepath.Join(dir, f)); err != nil {
				return fail(err)
			}
		}
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := writeSynced(filepath.Join(dir, StateInfoFile), append(b, '\n')); err != nil {
		return fail(err)
	}
	if err := syncFile(dir); err != nil {
		return fail(err)
	}
	var saved hypervisor.Saved
	for _, f := range []string{StateFile, MemoryFile, StateInfoFile} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, f), &st); err != nil {
			return fail(err)
		}
		saved.Bytes += st.Blocks * 512
	}
	d.log().Info("Firecracker VM saved", "pid", h.PID, "dir", dir, "bytes", saved.Bytes, "jailed", info.Jailed)
	return saved, nil
}

// Restore starts a fresh Firecracker for spec (under the jailer when the
// driver uses it), configures nothing but the logger and the metrics, and
// loads the state Save wrote in dir with resume_vm false: the handle it
// returns is paused. See the top of this file for what a restore can
// change (the TAP, the vsock socket, and, under the jailer, the disk
// files) and what it refuses.
func (d *Driver) Restore(ctx context.Context, spec hypervisor.Spec, dir string) (hypervisor.Handle, error) {
	fail0 := func(err error) (hypervisor.Handle, error) {
		return hypervisor.Handle{}, fmt.Errorf("firecracker: restoring VM %s from %s: %w", spec.ID, dir, err)
	}
	if err := validateShape(spec); err != nil {
		return fail0(err)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fail0(err)
	}
	info, err := readStateInfo(dir)
	if err != nil {
		return fail0(err)
	}
	for _, f := range []string{StateFile, MemoryFile} {
		if err := hypervisor.RegularFile(filepath.Join(dir, f)); err != nil {
			return fail0(fmt.Errorf("%s: %w: save the VM again", f, err))
		}
	}
	bin, version, err := d.binVersion(ctx)
	if err != nil {
		return hypervisor.Handle{}, err
	}
	l, fp, err := d.layoutFor(spec, bin)
	if err != nil {
		return fail0(err)
	}
	load := SnapshotLoadParams{SnapshotPath: filepath.Join(dir, StateFile), MemFilePath: filepath.Join(dir, MemoryFile)}
	if l.jail != nil {
		l.jail.restoreLinks(dir)
		load.SnapshotPath, load.MemFilePath = "/"+jailRestoreState, "/"+jailRestoreMemory
	}
	if err := planRestore(&load, info, spec, fp, l.jail != nil, version); err != nil {
		return fail0(err)
	}
	body, err := loadSnapshotBody(load, version)
	if err != nil {
		return fail0(err)
	}
	calls := append(setupCalls(fp), call{"loading the saved state", http.MethodPut, "/snapshot/load", body})
	h, err := d.start(ctx, spec, bin, l, calls)
	if err != nil {
		if info.Version != version.String() {
			err = fmt.Errorf("%w (the state was saved by Firecracker v%s and this is v%s, which may not load it: boot the VM instead)", err, info.Version, version)
		}
		return fail0(err)
	}
	d.log().Info("Firecracker restored", "vm", spec.ID, "pid", h.PID, "version", version.String(), "jailed", l.jail != nil, "state", dir)
	return h, nil
}

// planRestore checks that spec can take the saved state info and fills in
// p the overrides that make it the spec's: the vsock socket and the TAP.
// fp are the spec's files as Firecracker would open them.
func planRestore(p *SnapshotLoadParams, info stateInfo, spec hypervisor.Spec, fp fcPaths, jailed bool, v *semver.Version) error {
	if info.VCPUs != spec.VCPUs || info.MemoryMiB != spec.MemoryMiB {
		return fmt.Errorf("the state is of a VM with %d vCPUs and %d MiB, this VM has %d and %d: boot it instead", info.VCPUs, info.MemoryMiB, spec.VCPUs, spec.MemoryMiB)
	}
	switch {
	case info.Jailed && !jailed:
		return errors.New("the state was saved by a Firecracker under the jailer, whose disk paths are inside its chroot: restore it with the jailer on")
	case !info.Jailed && jailed:
		return errors.New("the state was saved by a Firecracker without the jailer, whose disk paths are the host's: restore it with the jailer off, or save it again under the jailer")
	}
	if len(info.Drives) != len(spec.Disks) {
		return fmt.Errorf("the state has %d disks, this VM %d: restore it onto disks of the same layout", len(info.Drives), len(spec.Disks))
	}
	for i, disk := range spec.Disks {
		saved := info.Drives[i]
		if saved.ID != disk.ID || saved.ReadOnly != disk.ReadOnly {
			return fmt.Errorf("disk %d is %s (read-only %t) in the state and %s (read-only %t) in this VM: restore it onto disks of the same layout", i, saved.ID, saved.ReadOnly, disk.ID, disk.ReadOnly)
		}
		if filepath.Clean(saved.Path) != filepath.Clean(fp.Disks[i]) {
			// Only without the jailer: a jailed VM's disks have the same
			// paths in every chroot.
			return fmt.Errorf("the state opens disk %s at %s and this VM's is %s: Firecracker restores a drive only from the path it was saved with (no release overrides drives), so a state restores into another VM's disks only under the jailer: run Firecracker under the jailer", disk.ID, saved.Path, fp.Disks[i])
		}
	}
	if info.Vsock != "" && filepath.Clean(info.Vsock) != filepath.Clean(fp.Vsock) {
		if v.LessThan(VsockOverrideSince) {
			return fmt.Errorf("the state's vsock socket is %s and this VM's is %s: Firecracker v%s cannot move it (vsock_override needs v%s): upgrade Firecracker or run it under the jailer", info.Vsock, fp.Vsock, v, VsockOverrideSince)
		}
		p.VsockOverride = fp.Vsock
	}
	switch {
	case spec.NIC == nil && info.TAP != "":
		return fmt.Errorf("the state's VM had a network interface (TAP %s) and this VM has none: give it a NIC", info.TAP)
	case spec.NIC != nil && info.TAP == "":
		return errors.New("the state's VM had no network interface and this VM has one: restore it without a NIC or boot it instead")
	case spec.NIC != nil && spec.NIC.TAP != info.TAP:
		if v.LessThan(NetworkOverridesSince) {
			return fmt.Errorf("the state's VM used TAP %s and this VM has %s: Firecracker v%s cannot give a restored VM another TAP (network_overrides needs v%s): upgrade Firecracker or restore it with TAP %s", info.TAP, spec.NIC.TAP, v, NetworkOverridesSince, info.TAP)
		}
		p.NetworkOverrides = []NetworkOverride{{IfaceID: NICID, HostDevName: spec.NIC.TAP}}
	}
	return nil
}

// readStateInfo reads StateInfoFile in dir.
func readStateInfo(dir string) (stateInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateInfoFile))
	if err != nil {
		return stateInfo{}, fmt.Errorf("reading the state's description: %w: is it a state the Firecracker driver saved?", err)
	}
	var info stateInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return stateInfo{}, fmt.Errorf("%s: %w", StateInfoFile, err)
	}
	if info.Format != stateInfoFormat {
		return stateInfo{}, fmt.Errorf("%s has format %d, this driver reads %d: save the VM again", StateInfoFile, info.Format, stateInfoFormat)
	}
	return info, nil
}

// restoreLinks makes p a restore's jail: the saved state's files instead
// of the kernel and initrd (a restored VM does not boot), read-only.
func (p *jailPlan) restoreLinks(dir string) {
	links := p.Links[:0]
	for _, l := range p.Links {
		if !l.Copyable {
			links = append(links, l)
		}
	}
	p.Links = append(links,
		jailLink{Src: filepath.Join(dir, StateFile), Name: jailRestoreState, State: true},
		jailLink{Src: filepath.Join(dir, MemoryFile), Name: jailRestoreMemory, State: true},
	)
}

// copyFresh copies src to a new file dst, the daemon's user's with group
// gid and mode 0640, synced.
func copyFresh(dst, src string, gid int) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	for _, step := range []func() error{
		func() error { return out.Chown(os.Getuid(), gid) },
		func() error { return out.Chmod(0o640) },
		out.Sync,
		out.Close,
	} {
		if err := step(); err != nil {
			out.Close()
			os.Remove(dst)
			return err
		}
	}
	return nil
}

// writeSynced writes a new file and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncFile flushes a file or directory to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
