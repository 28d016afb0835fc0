package vm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/agentlink"
	"github.com/bangerdev/banger/internal/host/crashpoint"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/poll"
)

// ConsoleLimit bounds each VM's serial console log.
const ConsoleLimit = 4 << 20

// cmdline is banger's part of the guest kernel command line: the root
// disk (for an overlay root, banger's init assembles it from vda and the
// upper disk vdc) and the guest network, which banger-agent net-up applies.
func (m *Manager) cmdline(v *VM) string {
	prefix := m.Net.Subnet().Bits()
	parts := []string{
		"root=/dev/vda", "rw", "net.ifnames=0",
		fmt.Sprintf("banger.ip=%s/%d", v.Lease.IP, prefix),
		"banger.gw=" + m.Net.Gateway().String(),
		"banger.mac=" + v.Lease.MAC,
		"banger.hostname=" + v.Name,
	}
	if v.Spec.RootLayout == RootOverlay {
		parts = append(parts, "banger.rootfs=overlay")
	}
	if dns := m.Net.DNS(); len(dns) > 0 {
		addrs := make([]string, len(dns))
		for i, a := range dns {
			addrs[i] = a.String()
		}
		parts = append(parts, "banger.dns="+strings.Join(addrs, ","))
	}
	return strings.Join(parts, " ")
}

// bootDisks are the VM's disks in guest order: vda root, vdb work and,
// for an overlay root, vdc upper; an overlay's root is the image's
// rootfs, read-only.
func bootDisks(v *VM, img image.Image, dir string) []hypervisor.Disk {
	if v.Spec.RootLayout == RootOverlay {
		return []hypervisor.Disk{
			{ID: "root", Path: img.Path(image.Rootfs), ReadOnly: true},
			{ID: "work", Path: workDisk(dir)},
			{ID: "upper", Path: upperDisk(dir)},
		}
	}
	return []hypervisor.Disk{{ID: "root", Path: rootDisk(dir)}, {ID: "work", Path: workDisk(dir)}}
}

// boot brings a VM with disks up: auth files, TAP, hypervisor, agent,
// readiness; the caller records it running. On error the caller cleans up
// (the runtime records what was taken).
func (m *Manager) boot(ctx context.Context, v *VM, img image.Image, choice Choice, p Progress) error {
	hv := choice.HV
	p.Stage("sync auth files")
	initrd, _, err := m.writeBootPayload(ctx, m.Dir(v.ID), img, p)
	if err != nil {
		return err
	}

	tap, err := m.takeTAP(ctx, v, p)
	if err != nil {
		return err
	}
	spec := m.launchSpec(v, img, choice, initrd, tap)
	var (
		h    hypervisor.Handle
		sess *agentmux.Session
	)
	for attempt := 1; ; attempt++ {
		p.Stage("launch " + hv.Name())
		if h, err = hv.Launch(ctx, spec); err != nil {
			return err
		}
		crashpoint.Here(ctx)
		v.Runtime.Handle = &h
		v.Runtime.StartedAt = m.now()
		if err := m.save(ctx, v); err != nil {
			return err
		}
		p.Detail("pid %d, %s", h.PID, h.Accel)

		p.Stage("agent health")
		sess, err = m.waitAgent(ctx, hv, v.ID, h)
		if errors.Is(err, errStalled) && attempt == 1 {
			p.Logf("%v; relaunching it once", err)
			m.links.Drop(v.ID)
			if err := hv.Kill(h); err != nil && running(ctx, hv, h) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	// A hypervisor that ends from here on ends the waits below at once.
	ctx, stopWatch := m.whileRunning(ctx, hv, h)
	defer stopWatch()
	// The VM is usable once its work disk is /root; systemd mounts it a
	// little after the agent starts.
	health, err := m.waitRootMount(ctx, sess)
	if err != nil {
		return err
	}
	p.Detail("%s, /root on %s", health.Kernel, health.RootMount)
	if strings.HasPrefix(health.Payload, "failed") {
		p.Logf("the guest could not write every synced file: %s", termsafe.Line(health.Payload))
	}
	if keys, err := sess.HostKeys(ctx); err == nil && len(keys) > 0 {
		if err := m.pinHostKeys(v, keys); err != nil {
			return err
		}
	} else if err != nil {
		p.Logf("could not read the guest's SSH host keys: %v", err)
	}
	return m.readiness(ctx, sess, img, p)
}

// takeTAP takes the TAP for the VM's address from the pool and records it.
func (m *Manager) takeTAP(ctx context.Context, v *VM, p Progress) (string, error) {
	p.Stage("acquire tap")
	ip, err := netip.ParseAddr(v.Lease.IP)
	if err != nil {
		return "", fmt.Errorf("vm %s has no valid address lease (%q): delete it and create it again", v.Name, v.Lease.IP)
	}
	// The policy is in force before the TAP exists for the guest: it
	// never sends a packet under another.
	if err := m.applyEgress(v); err != nil {
		return "", err
	}
	tap, err := m.Net.AcquireTAP(ctx, ip)
	if err != nil {
		return "", err
	}
	crashpoint.Here(ctx)
	v.Runtime.TAP = tap
	if err := m.Store.SetLeaseTAP(ctx, v.ID, tap); err != nil {
		return tap, err
	}
	if err := m.save(ctx, v); err != nil {
		return tap, err
	}
	p.Detail("%s", tap)
	return tap, nil
}

// launchSpec is what the hypervisor gets to boot (or restore) v.
func (m *Manager) launchSpec(v *VM, img image.Image, choice Choice, initrd, tap string) hypervisor.Spec {
	dir := m.Dir(v.ID)
	return hypervisor.Spec{
		ID: v.ID, Name: v.Name, Dir: dir, VCPUs: v.Spec.VCPUs, MemoryMiB: v.Spec.MemoryMiB,
		Boot: hypervisor.Boot{
			Vmlinux: img.Path(image.Vmlinux), Vmlinuz: img.Path(image.Vmlinuz), Initrd: initrd,
			Cmdline: m.cmdline(v),
		},
		Disks:        bootDisks(v, img, dir),
		NIC:          &hypervisor.NIC{TAP: tap, MAC: v.Lease.MAC},
		ConsoleLimit: ConsoleLimit,
		Accel:        choice.Accel,
	}
}

// pinHostKeys records the SSH host keys the guest reported and pins them
// in the VM's known_hosts. Only keys that parse are kept (and stored):
// the list is the guest's word.
func (m *Manager) pinHostKeys(v *VM, keys []string) error {
	v.Runtime.HostKeys, _ = hostKeys(keys)
	return m.writeKnownHosts(v)
}

// readiness waits for SSH, always (so `banger vm ssh` works the moment
// the VM is running), and the image's own probes (e.g. opencode on 4096).
func (m *Manager) readiness(ctx context.Context, sess *agentmux.Session, img image.Image, p Progress) error {
	probes := append([]api.Probe{{Name: "ssh", Kind: "tcp", Port: 22}}, img.Manifest.Probes...)
	p.Stage("readiness")
	for _, pr := range probes {
		if err := m.waitProbe(ctx, sess, pr); err != nil {
			return err
		}
	}
	p.Detail("%d probe(s) ready", len(probes))
	return nil
}

// waitAgent connects to the agent (dial, upgrade to protocol 2) and asks
// for its health, retrying with short attempts until it answers or
// AgentTimeout passes. The session stays in m.links for later requests.
func (m *Manager) waitAgent(ctx context.Context, hv hypervisor.Hypervisor, id string, h hypervisor.Handle) (*agentmux.Session, error) {
	return m.waitAgentWith(ctx, hv, id, h, m.dialer(hv, h, id), 200*time.Millisecond)
}

// waitAgentWith is waitAgent dialling with dial, trying every so often (a
// restored guest's agent answers at once; a booting one takes seconds).
func (m *Manager) waitAgentWith(ctx context.Context, hv hypervisor.Hypervisor, id string, h hypervisor.Handle, dial agentlink.DialFunc, every time.Duration) (*agentmux.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, m.agentTimeout())
	defer cancel()
	var lastErr error
	console := consoleWatch{path: h.ConsoleLog, since: m.now()}
	var sess *agentmux.Session
	err := poll.Until(ctx, every, func() (bool, error) {
		s, err := m.links.Get(ctx, id, dial)
		if err == nil {
			attempt, stop := context.WithTimeout(ctx, 2*time.Second)
			_, err = s.Health(attempt)
			stop()
			if err == nil {
				sess = s
				return true, nil
			}
			m.links.Drop(id)
		}
		lastErr = err
		if st, err := hv.Status(ctx, h); err == nil && st == hypervisor.Stopped {
			return false, fmt.Errorf("the hypervisor exited before the guest agent answered; console tail:\n%s", consoleTail(h.ConsoleLog, 15))
		}
		if h.Accel == "tcg" && console.silentFor(m.now()) > m.stallAfter() {
			return false, fmt.Errorf("%w: its console has been silent for %s under software emulation; last console lines:\n%s",
				errStalled, m.stallAfter(), consoleTail(h.ConsoleLog, 5))
		}
		return false, nil
	})
	switch {
	case err == nil:
		return sess, nil
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return nil, api.Errorf(api.CodeUnavailable, "the guest agent did not answer within %s (%v); last console lines:\n%s",
			m.agentTimeout(), lastErr, consoleTail(h.ConsoleLog, 15))
	default:
		return nil, err
	}
}

// errStalled: a TCG guest stopped making progress before its agent came up.
var errStalled = errors.New("the guest stalled during boot")

func (m *Manager) stallAfter() time.Duration {
	if m.StallAfter > 0 {
		return m.StallAfter
	}
	return 90 * time.Second
}

// consoleWatch notices when a console log last changed size.
type consoleWatch struct {
	path  string
	size  int64
	since time.Time // when the size last changed (or the watch began)
}

func (c *consoleWatch) silentFor(now time.Time) time.Duration {
	if fi, err := os.Stat(c.path); err == nil && fi.Size() != c.size {
		c.size, c.since = fi.Size(), now
	}
	return now.Sub(c.since)
}

// dialer opens the agent channel of the VM id behind h, with the agent
// key the VM booted with (agentKey) and its name for errors.
func (m *Manager) dialer(hv hypervisor.Hypervisor, h hypervisor.Handle, id string) agentlink.DialFunc {
	return func(ctx context.Context) (agentlink.Channel, error) {
		key, err := agentKey(m.Dir(id))
		if err != nil {
			return agentlink.Channel{}, err
		}
		name := id
		if v, err := m.Get(ctx, id); err == nil {
			name = v.Name
		}
		conn, err := hv.DialAgent(ctx, h)
		if err != nil {
			return agentlink.Channel{}, err
		}
		return agentlink.Channel{Conn: conn, Key: key, VM: name}, nil
	}
}

// Agent returns the agent session of a running VM, connecting if there
// is none (after a daemon restart, say).
func (m *Manager) Agent(ctx context.Context, name string) (VM, *agentmux.Session, error) {
	v, err := m.Get(ctx, name)
	if err != nil {
		return v, nil, err
	}
	h := v.Runtime.Handle
	if v.State != api.VMRunning || h == nil {
		return v, nil, notRunning(v)
	}
	hv, ok := m.Drivers[h.Driver]
	if !ok {
		return v, nil, fmt.Errorf("VM %s: unknown hypervisor driver %q", v.Name, h.Driver)
	}
	sess, err := m.links.Get(ctx, v.ID, m.dialer(hv, *h, v.ID))
	if err != nil {
		if !running(ctx, hv, *h) {
			return v, nil, api.Errorf(api.CodeFailedPrecondition, "VM %s is no longer running (its hypervisor exited): see `banger vm logs %s`, then `banger vm start %s`", v.Name, v.Name, v.Name)
		}
		return v, nil, api.Errorf(api.CodeUnavailable, "cannot reach the guest agent of VM %s: %v; systemd in the guest restarts it within seconds, so try again; if it keeps failing, see `banger vm logs %s` and restart the VM with `banger vm restart %s`", v.Name, err, v.Name, v.Name)
	}
	return v, sess, nil
}

// waitRootMount polls health until the guest reports /root mounted.
func (m *Manager) waitRootMount(ctx context.Context, c *agentmux.Session) (agentproto.Health, error) {
	ctx, cancel := context.WithTimeout(ctx, m.agentTimeout())
	defer cancel()
	var h agentproto.Health
	err := poll.Until(ctx, 250*time.Millisecond, func() (bool, error) {
		attempt, stop := context.WithTimeout(ctx, 5*time.Second)
		got, err := c.Health(attempt)
		stop()
		if err == nil {
			h = got
			// The agent writes the boot payload's files into /root once
			// the work disk is there; an agent that does not report it
			// (Payload "") is taken at its mount.
			return h.RootMount != "" && h.Payload != "pending", nil
		}
		return false, nil
	})
	switch {
	case err == nil:
		return h, nil
	case h.RootMount != "":
		return h, api.Errorf(api.CodeUnavailable, "the guest agent did not finish writing the boot payload into /root within %s: see `banger vm logs`", m.agentTimeout())
	default:
		return h, api.Errorf(api.CodeUnavailable, "the work disk was not mounted at /root within %s: see `banger vm logs` (root.mount)", m.agentTimeout())
	}
}

func (m *Manager) agentTimeout() time.Duration {
	if m.AgentTimeout > 0 {
		return m.AgentTimeout
	}
	return 5 * time.Minute
}

// waitProbe polls a readiness probe through the agent.
func (m *Manager) waitProbe(ctx context.Context, c *agentmux.Session, pr api.Probe) error {
	if pr.Kind != "tcp" {
		return fmt.Errorf("readiness probe %s: unknown kind %q", pr.Name, pr.Kind)
	}
	ctx, cancel := context.WithTimeout(ctx, m.agentTimeout())
	defer cancel()
	var last string
	// Every 100 ms for the first 2 s (a restored guest's sshd is back
	// within a few hundred ms of its reload), then every 500 ms (a
	// booting guest takes seconds).
	tick := 0
	err := poll.Until(ctx, 100*time.Millisecond, func() (bool, error) {
		if tick++; tick > 20 && tick%5 != 0 {
			return false, nil
		}
		attempt, stop := context.WithTimeout(ctx, 5*time.Second)
		var r agentproto.ProbeResult
		err := c.Call(attempt, agentproto.TypeProbeTCP, map[string]int{"port": pr.Port}, &r)
		stop()
		if err == nil && r.Open {
			return true, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = r.Error
		}
		return false, nil
	})
	if err != nil {
		return api.Errorf(api.CodeUnavailable, "%s (tcp/%d) was not ready within %s: %s; see `banger vm logs`", pr.Name, pr.Port, m.agentTimeout(), last)
	}
	return nil
}

// writeKnownHosts pins the guest's host keys for its address. Only keys
// that parse are written, re-marshalled (see knownHostsFile); the others
// are logged and left out.
func (m *Manager) writeKnownHosts(v *VM) error {
	content, skipped := knownHostsFile(v.Lease.IP, v.Runtime.HostKeys)
	for _, s := range skipped {
		m.Log.Warn("ignoring an invalid SSH host key from the guest", "vm", v.Name, "key", s)
	}
	return os.WriteFile(m.KnownHosts(v.ID), content, 0o600)
}

// Start boots a stopped VM.
func (m *Manager) Start(ctx context.Context, name string, p Progress) (VM, error) {
	v, err := m.Get(ctx, name)
	if err != nil {
		return v, err
	}
	if v.State == api.VMPaused {
		return m.Resume(ctx, v.ID, p)
	}
	unlock := m.lock(v.ID)
	defer unlock()
	if v, err = m.Get(ctx, v.ID); err != nil {
		return v, err
	}
	if v.State != api.VMStopped {
		return v, NotStopped(v)
	}
	choice, err := m.Select(ctx, v.Spec.Hypervisor, p)
	if err != nil {
		return v, err
	}
	v.Runtime = Runtime{}
	if choice.Warning != "" {
		v.Runtime.Warnings = []string{choice.Warning}
		p.Logf("warning: %s", choice.Warning)
	}
	if err := m.checkSpaceForStart(&v, p); err != nil {
		return v, err
	}
	img, _, err := m.Images.Repair(ctx, v.ImageID, p)
	if err != nil {
		return v, err
	}
	// The agent is the daemon's companion: every boot runs the daemon's
	// banger-agent as the initramfs's init, which installs itself into the
	// root filesystem (internal/shared/bootpayload), so a VM made by an older
	// banger speaks this daemon's protocol after a start.
	if v.Spec.AgentVersion != img.Manifest.AgentVersion {
		p.Logf("banger-agent %s → %s (installed at boot)", orNone(v.Spec.AgentVersion), img.Manifest.AgentVersion)
		v.Spec.AgentVersion = img.Manifest.AgentVersion
	}
	sp := &stageRecorder{Progress: p}
	if err := m.boot(ctx, &v, img, choice, sp); err != nil {
		err = m.failedStart(context.WithoutCancel(ctx), &v, sp.stage, err)
		m.halt(context.WithoutCancel(ctx), &v, false)
		return v, err
	}
	v.State = api.VMRunning
	return v, m.save(ctx, &v)
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// notRunning is the refusal to reach a VM that does not run: a stopped
// one can be started; one being created or deleted cannot (yet).
func notRunning(v VM) error {
	switch v.State {
	case api.VMStopped:
		return api.Errorf(api.CodeFailedPrecondition, "VM %s is stopped: start it with `banger vm start %s`", v.Name, v.Name)
	case api.VMDeleting:
		return api.Errorf(api.CodeNotFound, "VM %s is being deleted", v.Name)
	case api.VMPaused:
		return api.Errorf(api.CodeFailedPrecondition, "VM %s is paused (its state is on disk): resume it with `banger vm resume %s`", v.Name, v.Name)
	}
	return api.Errorf(api.CodeFailedPrecondition, "VM %s is %s: wait until it is running", v.Name, v.State)
}

// NotStopped is the refusal to start a VM that is not stopped.
func NotStopped(v VM) error {
	if v.State == api.VMRunning {
		return api.Errorf(api.CodeFailedPrecondition, "vm %s is already running: `banger vm restart %s` restarts it", v.Name, v.Name)
	}
	return api.Errorf(api.CodeFailedPrecondition, "vm %s is %s: wait until it is running or stopped", v.Name, v.State)
}

// Stop shuts a VM down cleanly: the agent asks systemd to power off, then
// the hypervisor waits (ACPI power-down as a fallback) and kills only if
// the guest does not finish in time.
func (m *Manager) Stop(ctx context.Context, name string) (VM, error) {
	v, unlock, err := m.getLocked(ctx, name)
	defer unlock()
	if err != nil {
		return v, err
	}
	switch v.State {
	case api.VMStopped:
		return v, nil
	case api.VMPaused:
		// As a power cut: what was in its memory is lost.
		return v, m.discardState(ctx, &v)
	}
	return v, m.halt(ctx, &v, true)
}

// halt stops the hypervisor (gracefully or not), returns the TAP and
// records the VM stopped.
func (m *Manager) halt(ctx context.Context, v *VM, graceful bool) error {
	var errs []error
	if h := v.Runtime.Handle; h != nil {
		hv, ok := m.Drivers[h.Driver]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("unknown hypervisor driver %q", h.Driver))
		case graceful && running(ctx, hv, *h):
			attempt, stop := context.WithTimeout(ctx, 3*time.Second)
			if sess, err := m.links.Get(attempt, v.ID, m.dialer(hv, *h, v.ID)); err == nil {
				sess.Call(attempt, agentproto.TypePowerOff, nil, nil)
			}
			stop()
			sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			if err := hv.Shutdown(sctx, *h); err != nil {
				errs = append(errs, err)
			}
			cancel()
		default:
			if err := hv.Kill(*h); err != nil && running(ctx, hv, *h) {
				errs = append(errs, err)
			}
		}
	}
	crashpoint.Here(ctx)
	m.links.Drop(v.ID)
	if len(errs) == 0 {
		// The boot's key and credentials are not kept at rest; the next
		// start writes new ones. The hypervisor is gone: a socket it left
		// (killed, or launched by a start a crash interrupted) is stale.
		socks, _ := filepath.Glob(filepath.Join(m.Dir(v.ID), "*.sock"))
		for _, f := range append([]string{bootInitrd(m.Dir(v.ID)), agentKeyFile(m.Dir(v.ID))}, socks...) {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := m.releaseTAP(ctx, v); err != nil {
		errs = append(errs, err)
	}
	v.Runtime.Handle = nil
	if v.State != api.VMDeleting { // a delete's mark stays until the record goes
		v.State = api.VMStopped
	}
	if err := m.save(ctx, v); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// running reports whether the hypervisor says the VM's process runs.
func running(ctx context.Context, hv hypervisor.Hypervisor, h hypervisor.Handle) bool {
	st, err := hv.Status(ctx, h)
	return err == nil && st != hypervisor.Stopped
}

// releaseTAP returns the VM's TAP to the pool. A runtime that lost its TAP
// name has nothing to release: that is logged and skipped, never an error.
func (m *Manager) releaseTAP(ctx context.Context, v *VM) error {
	tap := v.Runtime.TAP
	if tap == "" {
		tap = v.Lease.TAP
	}
	if tap == "" {
		m.Log.Info("no tap recorded for vm; nothing to release", "vm", v.Name)
		m.dropEgress(v)
		return nil
	}
	if err := m.Net.ReleaseTAP(ctx, tap); err != nil {
		return fmt.Errorf("returning %s to the pool: %w", tap, err)
	}
	m.dropEgress(v)
	v.Runtime.TAP = ""
	v.Lease.TAP = ""
	if err := m.Store.SetLeaseTAP(context.WithoutCancel(ctx), v.ID, ""); err != nil && !strings.Contains(err.Error(), "not found") {
		return err
	}
	return nil
}

// Delete stops a VM at once (its disks go too, so there is nothing to
// flush) and removes everything it had: process, TAP, disks, record and
// lease.
func (m *Manager) Delete(ctx context.Context, name string) error {
	v, unlock, err := m.getLocked(ctx, name)
	defer unlock()
	if err != nil {
		return err
	}
	return m.destroy(ctx, &v)
}

func (m *Manager) destroy(ctx context.Context, v *VM) error {
	var errs []error
	// Recorded first: a crash from here on leaves a VM the next daemon
	// start deletes (Reconcile), never one without its disks.
	if v.State != api.VMDeleting {
		v.State = api.VMDeleting
		if err := m.save(ctx, v); err != nil && !strings.Contains(err.Error(), "not found") {
			return err
		}
	}
	crashpoint.Here(ctx)
	if err := m.halt(ctx, v, false); err != nil {
		errs = append(errs, err)
	}
	crashpoint.Here(ctx)
	if err := os.RemoveAll(m.Dir(v.ID)); err != nil {
		errs = append(errs, err)
	}
	crashpoint.Here(ctx)
	if err := m.Store.DeleteVM(ctx, v.ID); err != nil && !strings.Contains(err.Error(), "not found") {
		errs = append(errs, err)
	} else {
		m.removed(v)
		m.Images.UsersChanged(ctx, v.ImageID)
	}
	m.locks.Delete(v.ID)
	m.dropRemovedImage(ctx, v.ImageID)
	return errors.Join(errs...)
}

// dropRemovedImage finishes a forced image removal (its files and record)
// once its last VM is gone.
func (m *Manager) dropRemovedImage(ctx context.Context, imageID string) {
	if err := m.Images.ReleaseRemoved(context.WithoutCancel(ctx), imageID); err != nil {
		m.Log.Warn("releasing a removed image", "image", imageID, "error", err)
	}
}

// consoleTail returns the last n lines of a console log (at most
// api.ConsoleTailLines of its last 16 KiB), escaped for a terminal: the
// console is the guest's writing, and boot errors carry it to the user.
func consoleTail(path string, n int) string {
	lines := consoleLines(path)
	if len(lines) == 0 {
		return "(the console log is empty or missing)"
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// SSH returns what ssh needs to reach the VM with pinned host keys.
func (m *Manager) SSH(ctx context.Context, name string) (api.SSHInfo, error) {
	v, err := m.Get(ctx, name)
	if err != nil {
		return api.SSHInfo{}, err
	}
	if v.State != api.VMRunning {
		return api.SSHInfo{}, notRunning(v)
	}
	if _, err := netip.ParseAddr(v.Lease.IP); err != nil {
		return api.SSHInfo{}, fmt.Errorf("vm %s has no address", v.Name)
	}
	kh := m.KnownHosts(v.ID)
	if _, err := os.Stat(kh); err != nil {
		return api.SSHInfo{}, api.Errorf(api.CodeFailedPrecondition, "vm %s has no pinned host keys (the agent did not report them): restart it with `banger vm restart %s`", v.Name, v.Name)
	}
	return api.SSHInfo{Host: v.Lease.IP, User: "root", KeyFile: m.Cfg.SSHKeyPath(), KnownHosts: kh, HostAlias: v.Name}, nil
}

// Logs returns the console log path.
func (m *Manager) Logs(ctx context.Context, name string) (string, error) {
	v, err := m.Get(ctx, name)
	if err != nil {
		return "", err
	}
	if v.Runtime.Handle != nil && v.Runtime.Handle.ConsoleLog != "" {
		return v.Runtime.Handle.ConsoleLog, nil
	}
	return filepath.Join(m.Dir(v.ID), "console.log"), nil
}
