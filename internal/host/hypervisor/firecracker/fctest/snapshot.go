package fctest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Snapshots, as far as a client can see them. PUT /snapshot/create writes
// the microVM state (snapshot_path: the machine, the drives, the network
// interfaces and the vsock device as configured, with the paths they were
// opened by) and the guest memory (mem_file_path: what the stand-in guest
// keeps, guestMemory: the agent key, host name, host keys and uptime).
// PUT /snapshot/load reads both back, read-only as Firecracker opens them,
// applies network_overrides and vsock_override, reopens every drive at its
// saved path (the load fails as Firecracker's does when one is missing or
// not writable), binds the vsock socket, and leaves the guest paused (or
// running with resume_vm): its agent then answers with the saved key, its
// uptime continuing from the saved one.

// snapshotFormat marks a stand-in state file.
const snapshotFormat = "fctest-vmstate/1"

type savedVM struct {
	Format  string       `json:"format"`
	Version string       `json:"version"`
	VCPUs   uint64       `json:"vcpus"`
	MemMiB  uint64       `json:"mem_mib"`
	Drives  []savedDrive `json:"drives"`
	Ifaces  []savedIface `json:"ifaces,omitempty"`
	Vsock   *savedVsock  `json:"vsock,omitempty"`
	Entropy bool         `json:"entropy,omitempty"`
}

type savedDrive struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	Root     bool   `json:"root"`
	ReadOnly bool   `json:"read_only"`
}

type savedIface struct {
	ID  string `json:"id"`
	TAP string `json:"tap"`
	MAC string `json:"mac,omitempty"`
}

type savedVsock struct {
	CID  uint64 `json:"cid"`
	Path string `json:"path"`
}

// guestMemory is the stand-in guest's state that a snapshot keeps.
type guestMemory struct {
	Key      []byte   `json:"key,omitempty"`
	Hostname string   `json:"hostname"`
	HostKeys []string `json:"host_keys"`
	UptimeMS int64    `json:"uptime_ms"`
}

// vmConfig answers GET /vm/config (FullVmConfiguration): the devices as
// configured, with the paths they were opened by.
func (s *Server) vmConfig() map[string]any {
	drives := []map[string]any{}
	for _, d := range s.drives {
		drives = append(drives, map[string]any{"drive_id": d.id, "path_on_host": d.path, "is_root_device": d.root, "is_read_only": d.readOnly})
	}
	ifaces := []map[string]any{}
	for _, i := range s.ifaces {
		m := map[string]any{"iface_id": i.id, "host_dev_name": i.tap}
		if i.mac != "" {
			m["guest_mac"] = i.mac
		}
		ifaces = append(ifaces, m)
	}
	cfg := map[string]any{
		"machine-config":     map[string]any{"vcpu_count": s.machine.vcpus, "mem_size_mib": s.machine.memMiB, "smt": s.machine.smt},
		"drives":             drives,
		"network-interfaces": ifaces,
	}
	if s.bootSource != nil {
		cfg["boot-source"] = map[string]any{"kernel_image_path": s.bootSource.kernel, "initrd_path": s.bootSource.initrd, "boot_args": s.bootSource.args}
	}
	if s.vsock != nil {
		cfg["vsock"] = map[string]any{"guest_cid": s.vsock.cid, "uds_path": s.vsock.path}
	}
	return cfg
}

func (s *Server) putSnapshotCreate(body []byte) (int, any, string) {
	obj, f := s.decode(body, snapshotCreateSchema)
	if f != "" {
		return bad(f)
	}
	if f := s.postBoot(); f != "" {
		return bad(f)
	}
	if s.state != statePaused {
		return bad("Create snapshot error: Cannot save the microVM state: Operation not allowed: the microVM must be paused")
	}
	vm := savedVM{Format: snapshotFormat, Version: s.version.String(), VCPUs: s.machine.vcpus, MemMiB: s.machine.memMiB, Entropy: s.entropy}
	for _, d := range s.drives {
		vm.Drives = append(vm.Drives, savedDrive{ID: d.id, Path: d.path, Root: d.root, ReadOnly: d.readOnly})
	}
	for _, i := range s.ifaces {
		vm.Ifaces = append(vm.Ifaces, savedIface{ID: i.id, TAP: i.tap, MAC: i.mac})
	}
	if s.vsock != nil {
		vm.Vsock = &savedVsock{CID: s.vsock.cid, Path: s.vsock.path}
	}
	mem := s.mem
	mem.UptimeMS = time.Since(s.startedAt).Milliseconds()
	for _, out := range []struct {
		path, what string
		v          any
	}{{str(obj, "snapshot_path"), "snapshot", vm}, {str(obj, "mem_file_path"), "memory", mem}} {
		b, _ := json.Marshal(out.v)
		// Firecracker creates (or truncates) both files, 0666 less the
		// umask.
		if err := os.WriteFile(out.path, append(b, '\n'), 0o666); err != nil {
			return bad(fmt.Sprintf("Create snapshot error: Cannot perform open on the %s backing file: %v", out.what, osError(err)))
		}
	}
	return noContent()
}

func (s *Server) putSnapshotLoad(body []byte) (int, any, string) {
	obj, f := s.decode(body, snapshotLoadSchema)
	if f != "" {
		return bad(f)
	}
	_, hasFile := obj["mem_file_path"]
	backend, hasBackend := obj["mem_backend"].(map[string]any)
	switch {
	case hasFile && hasBackend:
		return bad(serdeFault(errors.New("too many fields: either `mem_backend` or `mem_file_path` exclusively is required")))
	case !hasFile && !hasBackend:
		return bad(serdeFault(errors.New("missing field: either `mem_backend` or `mem_file_path` is required")))
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	if s.bootPath {
		return bad(faultLoadNotAllw)
	}
	memPath := str(obj, "mem_file_path")
	if hasBackend {
		if str(backend, "backend_type") != "File" {
			return bad("fctest does not implement the Uffd memory backend")
		}
		memPath = str(backend, "backend_path")
	}
	const prefix = "Load snapshot error: Cannot build a microVM from snapshot: "
	var vm savedVM
	if err := readJSON(str(obj, "snapshot_path"), &vm); err != nil {
		return bad(prefix + "Failed to get snapshot state from file: " + err.Error())
	}
	if vm.Format != snapshotFormat {
		return bad(prefix + "Failed to get snapshot state from file: not a stand-in snapshot")
	}
	var mem guestMemory
	if err := readJSON(memPath, &mem); err != nil {
		return bad(prefix + "Failed to load guest memory: Error creating guest memory from file: " + err.Error())
	}
	if overrides, ok := obj["network_overrides"].([]any); ok {
		for _, o := range overrides {
			o := o.(map[string]any)
			found := false
			for n := range vm.Ifaces {
				if vm.Ifaces[n].ID == str(o, "iface_id") {
					vm.Ifaces[n].TAP, found = str(o, "host_dev_name"), true
				}
			}
			if !found {
				return bad(prefix + "Failed to get snapshot state from file: Unknown Network Device.")
			}
		}
	}
	if o, ok := obj["vsock_override"].(map[string]any); ok {
		if vm.Vsock == nil {
			return bad(prefix + "Failed to get snapshot state from file: Unknown Vsock Device.")
		}
		vm.Vsock.Path = str(o, "uds_path")
	}
	// The devices come back as they were configured: each drive reopened
	// at its path, each TAP by its name, the vsock socket bound.
	drives := make([]drive, 0, len(vm.Drives))
	for _, d := range vm.Drives {
		if err := openable(d.Path, !d.ReadOnly); err != nil {
			return bad(fmt.Sprintf("%sFailed to build microVM from snapshot: Block device error: Virtio backend error: Error manipulating the backing file: %v %s", prefix, err, d.Path))
		}
		drives = append(drives, drive{id: d.ID, path: d.Path, root: d.Root, readOnly: d.ReadOnly})
	}
	var ifaces []iface
	for _, i := range vm.Ifaces {
		if len(i.TAP) == 0 || len(i.TAP) >= ifNameMax {
			return bad(fmt.Sprintf("%sFailed to build microVM from snapshot: Open tap device failed: Invalid interface name %q", prefix, i.TAP))
		}
		ifaces = append(ifaces, iface{id: i.ID, tap: i.TAP, mac: i.MAC})
	}
	if vm.Vsock != nil {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: vm.Vsock.Path, Net: "unix"})
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return bad(prefix + "Failed to build microVM from snapshot: Cannot create backend for vsock device: Error binding to the host-side Unix socket: Address in use (os error 98)")
			}
			return bad(prefix + "Failed to build microVM from snapshot: Cannot create backend for vsock device: Error binding to the host-side Unix socket: " + osError(err).Error())
		}
		ln.SetUnlinkOnClose(false)
		s.vsock = &vsockDev{cid: vm.Vsock.CID, path: vm.Vsock.Path, ln: ln}
		go s.acceptGuest(ln)
	}
	s.machine = machine{vcpus: vm.VCPUs, memMiB: vm.MemMiB}
	s.drives, s.ifaces, s.entropy = drives, ifaces, vm.Entropy
	s.mem = mem
	s.bootPath = true
	s.startedAt = time.Now().Add(-time.Duration(mem.UptimeMS) * time.Millisecond)
	s.state = statePaused
	if boolean(obj, "resume_vm") {
		s.state = stateRunning
	}
	return noContent()
}

// readJSON reads a file read-only, as Firecracker opens snapshot files.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return osError(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

// Identities returns the identity calls the guest's agent answered, in
// order.
func (s *Server) Identities() []agentproto.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agentproto.Identity(nil), s.identities...)
}

// IdentityPath is the Path under which an identity call is recorded among
// the requests (Method "CALL"), so that a test of a fake process finds it
// with Recorded.
const IdentityPath = "agent:" + agentproto.MethodIdentity

// guestHandler is the agent: agentmux.Basic's calls, and MethodIdentity,
// played minimally: recorded, and Hostname, HostKeys and Key applied.
type guestHandler struct {
	agentmux.Handler
	s *Server
}

func (g guestHandler) Call(ctx context.Context, method string, params json.RawMessage) (any, error) {
	if method != agentproto.MethodIdentity {
		return g.Handler.(agentmux.Caller).Call(ctx, method, params)
	}
	start := time.Now()
	var id agentproto.Identity
	if err := json.Unmarshal(params, &id); err != nil {
		return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("identity: %v", err)}
	}
	if id.TimeUnixNano == 0 {
		return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: "identity: time_unix_nano is required"}
	}
	if n := len(id.Seed); n != 0 && (n < agentproto.IdentitySeedMin || n > agentproto.IdentitySeedMax) {
		return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("identity: a seed of %d bytes: send %d to %d", n, agentproto.IdentitySeedMin, agentproto.IdentitySeedMax)}
	}
	if n := len(id.Key); n != 0 && n != agentmux.KeySize {
		return nil, &agentmux.Error{Code: agentmux.CodeBadRequest, Message: fmt.Sprintf("identity: a key of %d bytes: send %d", n, agentmux.KeySize)}
	}
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identities = append(s.identities, id)
	if id.Hostname != "" {
		s.mem.Hostname = id.Hostname
	}
	if id.HostKeys {
		s.mem.HostKeys = []string{newHostKey(len(s.identities))}
	}
	if len(id.Key) > 0 {
		s.mem.Key = append([]byte(nil), id.Key...) // for the connections opened from now on
	}
	if s.cfg.Record != nil {
		b, _ := json.Marshal(Request{Method: "CALL", Path: IdentityPath, Body: string(params), Status: 200})
		s.cfg.Record.Write(append(b, '\n'))
	}
	return agentproto.IdentityResult{HostKeys: append([]string(nil), s.mem.HostKeys...), ElapsedMS: time.Since(start).Milliseconds()}, nil
}

// newHostKey is the n-th host key an identity call made: an ed25519
// public key of its own, unlike FakeHostKey and the others.
func newHostKey(n int) string {
	pub := sha256.Sum256([]byte(fmt.Sprintf("fctest identity host key %d", n)))
	var blob []byte
	for _, part := range [][]byte{[]byte("ssh-ed25519"), pub[:]} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(part)))
		blob = append(blob, part...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " root@fctest-guest"
}
