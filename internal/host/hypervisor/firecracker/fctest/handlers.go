package fctest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
)

// The handlers, one per request type; s.mu is held. Each decodes and
// checks the body first (Firecracker's API thread parses the request
// before the VMM sees it), then refuses what the microVM's state rules
// out, then makes the checks Firecracker makes when it applies the
// request.

var resourceIDRE = regexp.MustCompile(`^[\p{L}\p{N}_]+$`)

// checkedID is parsed_request.rs's checked_id.
func checkedID(id string, present bool) string {
	if !present || id == "" {
		return faultEmptyID
	}
	if !resourceIDRE.MatchString(id) {
		return faultInvalidID
	}
	return ""
}

func bad(fault string) (int, any, string) { return http.StatusBadRequest, nil, fault }

func noContent() (int, any, string) { return http.StatusNoContent, nil, "" }

// createOrOpen checks a log or metrics path: releases from v1.14.0 create
// the file, older ones need it to exist.
func (s *Server) createOrOpen(path string) error {
	if !s.version.less(v1_14) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return osError(err)
		}
		return f.Close()
	}
	return openable(path, true)
}

func (s *Server) putLogger(body []byte) (int, any, string) {
	sch := loggerSchema
	if s.version.less(v1_5) {
		sch = loggerSchemaOld
	}
	obj, f := s.decode(body, sch)
	if f != "" {
		return bad(f)
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	if p := str(obj, "log_path"); p != "" {
		if err := s.createOrOpen(p); err != nil {
			return bad("Logger error: Failed to open target file: " + err.Error())
		}
	}
	s.loggerSet = true
	return noContent()
}

func (s *Server) putMetrics(body []byte) (int, any, string) {
	obj, f := s.decode(body, metricsSchema)
	if f != "" {
		return bad(f)
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	const prefix = "Metrics error: Cannot initialize the metrics system due to bad user input: "
	if err := s.createOrOpen(str(obj, "metrics_path")); err != nil {
		return bad(prefix + err.Error())
	}
	if s.metricsSet {
		return bad(prefix + "Reinitialization of metrics not allowed.")
	}
	s.metricsSet = true
	return noContent()
}

func (s *Server) putMachineConfig(body []byte) (int, any, string) {
	obj, f := s.decode(body, machineConfigSchema)
	if f != "" {
		return bad(f)
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	vcpus, _ := uintOf(obj, "vcpu_count")
	mem, _ := uintOf(obj, "mem_size_mib")
	smt := boolean(obj, "smt")
	if vcpus == 0 || vcpus > 32 || (smt && vcpus > 1 && vcpus%2 == 1) {
		return bad("Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")
	}
	if mem == 0 || (str(obj, "huge_pages") == "2M" && mem%2 != 0) {
		return bad("Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.")
	}
	s.machine = machine{vcpus: vcpus, memMiB: mem, smt: smt}
	s.bootPath = true
	return noContent()
}

// cmdlineMax is Firecracker's x86_64 kernel command line capacity.
const cmdlineMax = 2048

func (s *Server) putBootSource(body []byte) (int, any, string) {
	obj, f := s.decode(body, bootSourceSchema)
	if f != "" {
		return bad(f)
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	kernel, initrd, args := str(obj, "kernel_image_path"), str(obj, "initrd_path"), str(obj, "boot_args")
	if err := openable(kernel, false); err != nil {
		return bad("Boot source error: The kernel file cannot be opened: " + err.Error())
	}
	if initrd != "" {
		if err := openable(initrd, false); err != nil {
			return bad("Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. " + err.Error())
		}
	}
	if len(args) >= cmdlineMax {
		return bad("Boot source error: The kernel command line is invalid: Command line string is too large")
	}
	for _, r := range args {
		if r < 0x20 || r > 0x7e {
			return bad("Boot source error: The kernel command line is invalid: String contains an invalid character")
		}
	}
	s.bootSource = &bootSource{kernel: kernel, initrd: initrd, args: args}
	s.bootPath = true
	return noContent()
}

// postBootDevice refuses adding a device after the start: releases from
// v1.16.0 try a hotplug, which needs PCI (never on here).
func (s *Server) postBootDevice() string {
	if s.state == stateNotStarted {
		return ""
	}
	if !s.version.less(v1_16) {
		return "PCI is not enabled"
	}
	return faultPostBoot
}

func (s *Server) putDrive(id string, present bool, body []byte) (int, any, string) {
	if f := checkedID(id, present); f != "" {
		return bad(f)
	}
	sch := driveSchema
	if s.version.less(v1_6) {
		sch = driveSchemaOld
	}
	obj, f := s.decode(body, sch)
	if f != "" {
		return bad(f)
	}
	if str(obj, "drive_id") != id {
		return bad("The id from the path does not match the id from the body!")
	}
	if f := s.postBootDevice(); f != "" {
		return bad(f)
	}
	if str(obj, "socket") != "" {
		return bad("fctest does not implement vhost-user drives")
	}
	const prefix = "Drive config error: Unable to create the virtio block device: "
	path, hasPath := obj["path_on_host"].(string)
	readOnly, hasRO := obj["is_read_only"].(bool)
	if !hasPath || !hasRO {
		return bad(prefix + "a virtio block device needs path_on_host and is_read_only")
	}
	root := boolean(obj, "is_root_device")
	pos := -1
	for i, d := range s.drives {
		if d.id == id {
			pos = i
		}
	}
	if root && len(s.drives) > 0 && s.drives[0].root && pos != 0 {
		return bad("Drive config error: A root block device already exists!")
	}
	if err := openable(path, !readOnly); err != nil {
		return bad(fmt.Sprintf("%sVirtio backend error: Error manipulating the backing file: %v %s", prefix, err, path))
	}
	d := drive{id: id, path: path, root: root, readOnly: readOnly}
	switch {
	case pos < 0 && root:
		s.drives = append([]drive{d}, s.drives...)
	case pos < 0:
		s.drives = append(s.drives, d)
	default:
		s.drives[pos] = d
		if root && pos != 0 {
			s.drives[0], s.drives[pos] = s.drives[pos], s.drives[0]
		}
	}
	s.bootPath = true
	return noContent()
}

var macRE = regexp.MustCompile(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$`)

// ifNameMax is IFNAMSIZ: a TAP name has at most 15 bytes.
const ifNameMax = 16

func (s *Server) putNet(id string, present bool, body []byte) (int, any, string) {
	if f := checkedID(id, present); f != "" {
		return bad(f)
	}
	obj, f := s.decode(body, netSchema)
	if f != "" {
		return bad(f)
	}
	mac, hasMAC := obj["guest_mac"].(string)
	if hasMAC && !macRE.MatchString(mac) {
		return bad(serdeFault(fmt.Errorf("invalid value: string %q, expected a MAC address (six hex bytes separated by ':')", mac)))
	}
	if body := str(obj, "iface_id"); body != id {
		return bad(fmt.Sprintf("The id from the path [%s] does not match the id from the body [%s]!", id, body))
	}
	if f := s.postBootDevice(); f != "" {
		return bad(f)
	}
	if hasMAC {
		for _, i := range s.ifaces {
			if i.id != id && strings.EqualFold(i.mac, mac) {
				return bad("Network config error: The MAC address is already in use: " + strings.ToLower(mac))
			}
		}
	}
	tap := str(obj, "host_dev_name")
	if len(tap) == 0 || len(tap) >= ifNameMax {
		return bad(fmt.Sprintf("Network config error: Could not create the network device: Open tap device failed: Invalid interface name %q", tap))
	}
	i := iface{id: id, tap: tap, mac: mac}
	replaced := false
	for n := range s.ifaces {
		if s.ifaces[n].id == id {
			s.ifaces[n], replaced = i, true
		}
	}
	if !replaced {
		s.ifaces = append(s.ifaces, i)
	}
	s.bootPath = true
	return noContent()
}

// minGuestCID is the API definition's minimum: 0 to 2 are reserved (the
// hypervisor, local, the host).
const minGuestCID = 3

func (s *Server) putVsock(body []byte) (int, any, string) {
	obj, f := s.decode(body, vsockSchema)
	if f != "" {
		return bad(f)
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	cid, _ := uintOf(obj, "guest_cid")
	if cid < minGuestCID {
		return bad(fmt.Sprintf("fctest: guest_cid %d is below %d, the minimum of Firecracker's API definition (0 to 2 are reserved)", cid, minGuestCID))
	}
	path := str(obj, "uds_path")
	const prefix = "Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: "
	if old := s.vsock; old != nil {
		// Firecracker drops the device it replaces and removes its socket.
		old.ln.Close()
		if err := os.Remove(old.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return bad(prefix + osError(err).Error())
		}
		s.vsock = nil
	}
	// Firecracker binds the socket now, not at InstanceStart: the path
	// must not exist.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return bad(prefix + "Address in use (os error 98)")
		}
		return bad(prefix + osError(err).Error())
	}
	ln.SetUnlinkOnClose(false) // Firecracker leaves it behind when it exits
	s.vsock = &vsockDev{cid: cid, path: path, ln: ln}
	go s.acceptGuest(ln)
	s.bootPath = true
	return noContent()
}

func (s *Server) putEntropy(body []byte) (int, any, string) {
	if _, f := s.decode(body, entropySchema); f != "" {
		return bad(f)
	}
	if f := s.preBoot(); f != "" {
		return bad(f)
	}
	s.entropy = true
	s.bootPath = true
	return noContent()
}

func (s *Server) putActions(body []byte) (int, any, string) {
	obj, f := s.decode(body, actionSchema)
	if f != "" {
		return bad(f)
	}
	switch str(obj, "action_type") {
	case "InstanceStart":
		if f := s.preBoot(); f != "" {
			return bad(f)
		}
		if s.bootSource == nil {
			return bad(faultNoKernel)
		}
		s.start()
	case "SendCtrlAltDel":
		if f := s.postBoot(); f != "" {
			return bad(f)
		}
		s.ctrlAltDel()
	case "FlushMetrics":
		if f := s.postBoot(); f != "" {
			return bad(f)
		}
	}
	return noContent()
}

func (s *Server) patchVM(body []byte) (int, any, string) {
	obj, f := s.decode(body, vmStateSchema)
	if f != "" {
		return bad(f)
	}
	if f := s.postBoot(); f != "" {
		return bad(f)
	}
	if str(obj, "state") == "Paused" {
		s.state = statePaused
		return noContent()
	}
	s.state = stateRunning
	if s.pendingCAD {
		s.pendingCAD = false
		s.ctrlAltDel()
	}
	return noContent()
}
