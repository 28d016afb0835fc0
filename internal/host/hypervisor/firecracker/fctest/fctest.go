// Package fctest is a stand-in Firecracker for tests: an API server over a
// unix socket that checks every request against Firecracker's documented
// API and answers like Firecracker.
//
// What it checks, each read from Firecracker's sources and docs at the
// release tags: the method and path (the routes of
// src/firecracker/src/api_server/parsed_request.rs); every body against
// the serde struct Firecracker decodes it into (required fields, JSON
// types, integer widths, enum variants, unknown fields rejected where the
// struct denies them, fields that came or went with a release, per
// Config.Version); the checks Firecracker makes when it applies a request
// (vcpu_count 1 to 32, mem_size_mib above 0, guest_cid at least 3 as the
// API definition says, drive and interface ids of letters, digits and
// '_', ids in the path and the body agreeing, the files it opens existing,
// a vsock uds_path that must not exist yet, one root drive, unique MACs);
// and the order (pre-boot requests after InstanceStart, post-boot ones
// before it, InstanceStart without a boot source, a snapshot load after
// boot resources). A refused request is answered 400 with
// {"fault_message": ...} worded as Firecracker words it. Every request is
// recorded (Server.Requests) so a test can compare what a client sent.
//
// It also plays the guest: on PUT /vsock it binds the uds_path as
// Firecracker does; after InstanceStart a connection that writes
// "CONNECT <port>\n" for the agent's port gets "OK <n>\n" once the guest
// agent is up (Config.AgentDelay after the start; before that, or for
// another port, the connection is closed without a reply, as Firecracker
// does when nothing listens in the guest), followed at once by
// Config.Greeting and then a protocol 2 agent (agentmux) answering health,
// probe_tcp (Config.OpenPorts), host_keys and poweroff. The guest prints
// a boot log on the console and, after SendCtrlAltDel, a power-off line
// (PowerOffMarker), and powers off.
//
// Snapshots keep the guest (snapshot.go): PUT /snapshot/create writes the
// devices as configured and the guest's memory (its agent key, host name,
// host keys and uptime); PUT /snapshot/load reopens them, read-only, with
// network_overrides and vsock_override applied, and the agent answers
// with the saved key. The agent also takes MethodIdentity calls, played
// minimally: recorded (Identities; IdentityPath among a fake process's
// requests), with Hostname, HostKeys and Key applied. GET /vm/config
// reports the configuration.
//
// FakeBinary and RunIfFake turn a test binary into a fake `firecracker`
// executable running this server in a process of its own, for drivers
// that launch, adopt and stop real processes.
package fctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// DefaultVersion is the release the stand-in plays when Config.Version is
// empty.
const DefaultVersion = "1.16.1"

// PowerOffMarker is what the guest prints on the console when it powers
// off (after Ctrl-Alt-Del or the agent's poweroff).
const PowerOffMarker = "fctest: guest powered off"

// DefaultPowerOffDelay is how long the guest takes to power off after
// SendCtrlAltDel when Config.PowerOffDelay is 0.
const DefaultPowerOffDelay = 50 * time.Millisecond

// DefaultBootLog is how many bytes of boot log the guest prints when
// Config.BootLog is 0.
const DefaultBootLog = 16 << 10

// Config is how the stand-in behaves.
type Config struct {
	// Version is the Firecracker release played ("1.10.1");
	// DefaultVersion when empty.
	Version string `json:"version,omitempty"`
	// AgentDelay is how long after InstanceStart the guest agent starts
	// listening on its vsock port.
	AgentDelay time.Duration `json:"agent_delay,omitempty"`
	// AgentPort is the agent's vsock port; agentproto.VsockPort when 0.
	AgentPort uint32 `json:"agent_port,omitempty"`
	// Greeting is written right after "OK <n>\n", in the same write, to
	// show whether a client reads past the acknowledgement.
	Greeting string `json:"greeting,omitempty"`
	// OpenPorts are the guest's TCP ports that accept connections, as the
	// agent's probe_tcp reports them.
	OpenPorts []int `json:"open_ports,omitempty"`
	// PowerOffDelay is how long the guest takes to power off after
	// SendCtrlAltDel; DefaultPowerOffDelay when 0.
	PowerOffDelay time.Duration `json:"power_off_delay,omitempty"`
	// IgnoreCtrlAltDel makes a guest that never powers off.
	IgnoreCtrlAltDel bool `json:"ignore_ctrl_alt_del,omitempty"`
	// BootLog is how many bytes of boot log the guest prints on the
	// console at InstanceStart; DefaultBootLog when 0, none when < 0.
	BootLog int `json:"boot_log,omitempty"`
	// Fail makes requests that pass every check fail anyway, to test a
	// client's error handling: "PUT /drives/work" -> the fault_message.
	Fail map[string]string `json:"fail,omitempty"`
	// Console receives the guest's serial output (Firecracker's stdout);
	// nowhere when nil. The fake process uses its stdout.
	Console io.Writer `json:"-"`
	// Record, when set, receives every request as a line of JSON (a
	// Request). The fake process records to a file (see Recorded).
	Record io.Writer `json:"-"`
}

// Request is one request the stand-in received, and its answer.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body,omitempty"`
	Status int    `json:"status"`
	// Fault is the fault_message of a refused request.
	Fault string `json:"fault,omitempty"`
}

// Server is the stand-in Firecracker.
type Server struct {
	cfg     Config
	version version
	http    *http.Server

	mu       sync.Mutex
	requests []Request
	state    string // "Not started", "Running", "Paused"
	// bootPath: a boot-specific resource was configured (anything but the
	// logger and the metrics), which rules out a snapshot load.
	bootPath    bool
	loggerSet   bool
	metricsSet  bool
	machine     machine
	bootSource  *bootSource
	drives      []drive // in attach order: the root device first
	ifaces      []iface
	vsock       *vsockDev
	entropy     bool
	startedAt   time.Time
	nextPort    uint32
	powerOff    chan struct{}
	powerOnce   sync.Once
	pendingCAD  bool // Ctrl-Alt-Del sent while paused
	guestConns  map[net.Conn]bool
	connects    int // vsock connections that sent a CONNECT line
	closed      bool
	consoleMu   sync.Mutex
	agentCtx    context.Context
	agentCancel context.CancelFunc
	// The guest's memory, as far as the stand-in plays it: what a
	// snapshot saves and a load brings back (see snapshot.go).
	mem guestMemory
	// identities are the agent's identity calls, in order.
	identities []agentproto.Identity
}

type machine struct {
	vcpus, memMiB uint64
	smt           bool
}

type bootSource struct {
	kernel, initrd, args string
}

type drive struct {
	id, path       string
	root, readOnly bool
}

type iface struct {
	id, tap, mac string
}

type vsockDev struct {
	cid  uint64
	path string
	ln   *net.UnixListener
}

// Instance states, as GET / reports them.
const (
	stateNotStarted = "Not started"
	stateRunning    = "Running"
	statePaused     = "Paused"
)

// NewServer returns a stand-in with cfg; Serve runs it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	v, err := parseVersion(cfg.Version)
	if err != nil {
		return nil, err
	}
	if cfg.AgentPort == 0 {
		cfg.AgentPort = agentproto.VsockPort
	}
	if cfg.PowerOffDelay <= 0 {
		cfg.PowerOffDelay = DefaultPowerOffDelay
	}
	if cfg.BootLog == 0 {
		cfg.BootLog = DefaultBootLog
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:         cfg,
		version:     v,
		state:       stateNotStarted,
		machine:     machine{vcpus: 1, memMiB: 128},
		nextPort:    1 << 30,
		powerOff:    make(chan struct{}),
		guestConns:  map[net.Conn]bool{},
		agentCtx:    ctx,
		agentCancel: cancel,
	}
	s.http = &http.Server{Handler: s}
	return s, nil
}

// Serve answers API requests on l until Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and the guest: the API, the vsock listener and
// the guest's connections. Like Firecracker it leaves the socket files.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.vsock != nil && s.vsock.ln != nil {
		s.vsock.ln.SetUnlinkOnClose(false)
		s.vsock.ln.Close()
	}
	for c := range s.guestConns {
		c.Close()
	}
	s.mu.Unlock()
	s.agentCancel()
	return s.http.Close()
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Connects is how many vsock connections sent a CONNECT line.
func (s *Server) Connects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connects
}

// PoweredOff is closed when the guest powered off (after SendCtrlAltDel).
func (s *Server) PoweredOff() <-chan struct{} { return s.powerOff }

// State is the instance state, as GET / reports it.
func (s *Server) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Start runs a stand-in on a fresh socket for the duration of the test and
// returns it with the socket's path.
func Start(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fct-") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "fc.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(cfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s, sock
}

// maxPayload is Firecracker's default --http-api-max-payload-size.
const maxPayload = 51200

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	rec := Request{Method: r.Method, Path: r.URL.Path, Body: string(body)}
	var status int
	var fault string
	var out any
	switch {
	case err != nil:
		status, fault = http.StatusBadRequest, fmt.Sprintf("reading the request: %v", err)
	case len(r.TransferEncoding) > 0:
		// Firecracker's HTTP server (micro_http) has no chunked
		// transfer encoding: a body needs a Content-Length.
		status, fault = http.StatusBadRequest, fmt.Sprintf("fctest: Transfer-Encoding %v: Firecracker's HTTP server reads bodies by Content-Length only", r.TransferEncoding)
	case len(body) > maxPayload:
		status, fault = http.StatusBadRequest, fmt.Sprintf("Request payload with size %d is larger than the limit of %d allowed by server.", len(body), maxPayload)
	default:
		s.mu.Lock()
		status, out, fault = s.route(r.Method, r.URL.Path, body)
		if f, ok := s.cfg.Fail[r.Method+" "+r.URL.Path]; ok && status < 300 {
			status, out, fault = http.StatusBadRequest, nil, f
		}
		s.mu.Unlock()
	}
	rec.Status, rec.Fault = status, fault
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	if s.cfg.Record != nil {
		b, _ := json.Marshal(rec)
		s.cfg.Record.Write(append(b, '\n'))
	}
	s.mu.Unlock()

	w.Header().Set("Server", "Firecracker API")
	switch {
	case status == http.StatusNoContent:
		w.WriteHeader(status)
	case fault != "":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"fault_message": fault})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(out)
	}
}

// Faults worded as Firecracker words them.
const (
	faultPostBoot    = "The requested operation is not supported after starting the microVM."
	faultPreBoot     = "The requested operation is not supported before starting the microVM."
	faultEmptyID     = "The ID cannot be empty."
	faultInvalidID   = "API Resource IDs can only contain alphanumeric characters and underscores."
	faultNoKernel    = "Start microvm error: Cannot start microvm without kernel configuration."
	faultLoadNotAllw = "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources."
)

func invalidPath(method, token string) string {
	return fmt.Sprintf("Invalid request method and/or path: %s %s.", method, token)
}

func serdeFault(err error) string {
	return fmt.Sprintf("An error occurred when deserializing the json body of a request: %v.", err)
}

// route answers one request; s.mu is held. It returns the status, the
// body of a 200 and the fault of a 400.
func (s *Server) route(method, path string, body []byte) (int, any, string) {
	tokens := strings.Split(strings.TrimLeft(path, "/"), "/")
	if len(tokens) > 0 && tokens[len(tokens)-1] == "" {
		tokens = tokens[:len(tokens)-1]
	}
	first, second := "", ""
	if len(tokens) > 0 {
		first = tokens[0]
	}
	if len(tokens) > 1 {
		second = tokens[1]
	}
	hasBody := len(body) > 0
	switch method {
	case http.MethodGet:
		if hasBody {
			return bad("GET request cannot have a body.")
		}
		switch {
		case first == "":
			return http.StatusOK, map[string]string{
				"id":          "anonymous-instance",
				"state":       s.state,
				"vmm_version": s.version.String(),
				"app_name":    "Firecracker",
			}, ""
		case first == "version":
			return http.StatusOK, map[string]string{"firecracker_version": s.version.String()}, ""
		case first == "vm" && second == "config":
			return http.StatusOK, s.vmConfig(), ""
		case first == "machine-config":
			return http.StatusOK, map[string]any{"vcpu_count": s.machine.vcpus, "mem_size_mib": s.machine.memMiB, "smt": s.machine.smt}, ""
		}
		return bad(invalidPath(method, first))
	case http.MethodPut:
		if !hasBody {
			return bad("Empty PUT request.")
		}
		switch first {
		case "actions":
			return s.putActions(body)
		case "logger":
			return s.putLogger(body)
		case "metrics":
			return s.putMetrics(body)
		case "machine-config":
			return s.putMachineConfig(body)
		case "boot-source":
			return s.putBootSource(body)
		case "drives":
			return s.putDrive(second, len(tokens) > 1, body)
		case "network-interfaces":
			return s.putNet(second, len(tokens) > 1, body)
		case "vsock":
			return s.putVsock(body)
		case "entropy":
			if s.version.less(v1_4) {
				return bad(invalidPath(method, first))
			}
			return s.putEntropy(body)
		case "snapshot":
			switch second {
			case "create":
				return s.putSnapshotCreate(body)
			case "load":
				return s.putSnapshotLoad(body)
			case "":
				return bad("Missing snapshot operation type.")
			}
			return bad(invalidPath(method, "/snapshot/"+second))
		case "serial":
			if s.version.less(v1_14) {
				return bad(invalidPath(method, first))
			}
			return bad("fctest does not implement PUT /serial")
		case "balloon", "cpu-config", "mmds", "pmem", "hotplug":
			return bad(fmt.Sprintf("fctest does not implement PUT /%s", first))
		}
		return bad(invalidPath(method, first))
	case http.MethodPatch:
		if !hasBody {
			return bad("Empty PATCH request.")
		}
		switch first {
		case "vm":
			return s.patchVM(body)
		case "balloon", "drives", "machine-config", "mmds", "network-interfaces", "pmem", "hotplug":
			return bad(fmt.Sprintf("fctest does not implement PATCH /%s", first))
		}
		return bad(invalidPath(method, first))
	}
	return bad(invalidPath(method, first))
}

// decode parses and checks body against sch; it returns the object or a
// fault.
func (s *Server) decode(body []byte, sch *schema) (map[string]any, string) {
	obj, err := decodeObject(body, sch)
	if err == nil {
		err = sch.check(obj, s.version)
	}
	if err != nil {
		return nil, serdeFault(err)
	}
	return obj, ""
}

func str(obj map[string]any, k string) string {
	v, _ := obj[k].(string)
	return v
}

func boolean(obj map[string]any, k string) bool {
	v, _ := obj[k].(bool)
	return v
}

func uintOf(obj map[string]any, k string) (uint64, bool) {
	n, ok := obj[k].(json.Number)
	if !ok {
		return 0, false
	}
	u, err := strconv.ParseUint(n.String(), 10, 64)
	return u, err == nil
}

// preBoot refuses a pre-boot request once the microVM started.
func (s *Server) preBoot() string {
	if s.state != stateNotStarted {
		return faultPostBoot
	}
	return ""
}

// postBoot refuses a post-boot request before the microVM started.
func (s *Server) postBoot() string {
	if s.state == stateNotStarted {
		return faultPreBoot
	}
	return ""
}

// openable checks that Firecracker could open path (it opens the files it
// is given when the request comes, not at boot).
func openable(path string, write bool) error {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return osError(err)
	}
	return f.Close()
}

// osError words an error as Rust's io::Error displays it: "No such file or
// directory (os error 2)".
func osError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		return fmt.Errorf("%s%s (os error %d)", strings.ToUpper(msg[:1]), msg[1:], int(errno))
	}
	return err
}
