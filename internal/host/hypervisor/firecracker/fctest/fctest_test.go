package fctest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// client sends raw requests to a stand-in, as any HTTP client would.
type client struct {
	t    *testing.T
	sock string
}

func (c client) send(method, path, body string) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return c.sendReader(method, path, rd)
}

func (c client) sendReader(method, path string, rd io.Reader) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://localhost"+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", c.sock)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var fault struct {
		FaultMessage string `json:"fault_message"`
	}
	json.Unmarshal(b, &fault)
	return resp.StatusCode, fault.FaultMessage
}

func (c client) mustSend(method, path, body string) {
	c.t.Helper()
	if status, fault := c.send(method, path, body); status != http.StatusNoContent {
		c.t.Fatalf("%s %s %s: %d %s, want 204", method, path, body, status, fault)
	}
}

type files struct{ dir, kernel, disk, disk2 string }

func testFiles(t *testing.T) files {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := files{dir: dir}
	for _, p := range []*string{&f.kernel, &f.disk, &f.disk2} {
		fh, err := os.CreateTemp(dir, "file-")
		if err != nil {
			t.Fatal(err)
		}
		fh.Close()
		*p = fh.Name()
	}
	return f
}

// TestRejects sends requests Firecracker would refuse and checks that the
// stand-in refuses them the same way: 400 with a fault_message.
func TestRejects(t *testing.T) {
	tests := []struct {
		name    string
		version string
		before  func(f files) []req // must all succeed
		req     func(f files) req
		want    string // in the fault_message
	}{
		{name: "unknown path", req: func(files) req { return req{"PUT", "/machines", `{}`} },
			want: "Invalid request method and/or path: PUT machines."},
		{name: "GET with a body", req: func(files) req { return req{"GET", "/", `{}`} },
			want: "GET request cannot have a body."},
		{name: "PUT without a body", req: func(files) req { return req{"PUT", "/machine-config", ""} },
			want: "Empty PUT request."},
		{name: "unknown field", req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": 1, "mem_size_mib": 128, "cpus": 2}`}
		}, want: "unknown field `cpus`"},
		{name: "missing required field", req: func(files) req { return req{"PUT", "/machine-config", `{"vcpu_count": 1}`} },
			want: "missing field `mem_size_mib`"},
		{name: "string for an integer", req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": "1", "mem_size_mib": 128}`}
		}, want: `invalid type: string "1", expected u8`},
		{name: "float for an integer", req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": 1.0, "mem_size_mib": 128}`}
		}, want: "invalid type: floating point `1.0`"},
		{name: "vcpu_count over u8", req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": 300, "mem_size_mib": 128}`}
		}, want: "invalid value: integer `300`, expected u8"},
		{name: "zero vCPUs", req: func(files) req { return req{"PUT", "/machine-config", `{"vcpu_count": 0, "mem_size_mib": 128}`} },
			want: "The number of vCPUs must be greater than 0"},
		{name: "33 vCPUs", req: func(files) req { return req{"PUT", "/machine-config", `{"vcpu_count": 33, "mem_size_mib": 128}`} },
			want: "The number of vCPUs must be greater than 0"},
		{name: "odd vCPUs with SMT", req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": 3, "mem_size_mib": 128, "smt": true}`}
		}, want: "must be 1 or an even number if SMT is enabled"},
		{name: "no memory", req: func(files) req { return req{"PUT", "/machine-config", `{"vcpu_count": 1, "mem_size_mib": 0}`} },
			want: "The memory size (MiB) is either 0"},
		{name: "huge_pages before v1.7", version: "1.6.0", req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "2M"}`}
		}, want: "unknown field `huge_pages`"},
		{name: "missing kernel", req: func(f files) req {
			return req{"PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q}`, f.dir+"/nope")}
		}, want: "The kernel file cannot be opened: No such file or directory (os error 2)"},
		{name: "boot-source unknown field", req: func(f files) req {
			return req{"PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q, "cmdline": "x"}`, f.kernel)}
		}, want: "unknown field `cmdline`"},
		{name: "control character in boot_args", req: func(f files) req {
			return req{"PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q, "boot_args": "a\tb"}`, f.kernel)}
		}, want: "The kernel command line is invalid"},
		{name: "drive id mismatch", req: func(f files) req {
			return req{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "work", "path_on_host": %q, "is_root_device": false, "is_read_only": false}`, f.disk)}
		}, want: "The id from the path does not match the id from the body!"},
		{name: "drive id with a dash", req: func(f files) req {
			return req{"PUT", "/drives/root-disk", fmt.Sprintf(`{"drive_id": "root-disk", "path_on_host": %q, "is_root_device": false, "is_read_only": false}`, f.disk)}
		}, want: "API Resource IDs can only contain alphanumeric characters and underscores."},
		{name: "drive without id", req: func(f files) req {
			return req{"PUT", "/drives/", fmt.Sprintf(`{"drive_id": "", "path_on_host": %q, "is_root_device": false, "is_read_only": false}`, f.disk)}
		}, want: "The ID cannot be empty."},
		{name: "drive without is_root_device", req: func(f files) req {
			return req{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_read_only": false}`, f.disk)}
		}, want: "missing field `is_root_device`"},
		{name: "drive without is_read_only before v1.6", version: "1.5.1", req: func(f files) req {
			return req{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false}`, f.disk)}
		}, want: "missing field `is_read_only`"},
		{name: "is_read_only as a string", req: func(f files) req {
			return req{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false, "is_read_only": "true"}`, f.disk)}
		}, want: "invalid type: string \"true\", expected a boolean"},
		{name: "is_read_only as a number", req: func(f files) req {
			return req{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false, "is_read_only": 1}`, f.disk)}
		}, want: "invalid type: integer `1`, expected a boolean"},
		{name: "drive without path_on_host", req: func(files) req {
			return req{"PUT", "/drives/root", `{"drive_id": "root", "is_root_device": false, "is_read_only": false}`}
		}, want: "needs path_on_host and is_read_only"},
		{name: "missing drive file", req: func(f files) req {
			return req{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false, "is_read_only": true}`, f.dir+"/nope")}
		}, want: "Error manipulating the backing file: No such file or directory (os error 2)"},
		{name: "second root drive", before: func(f files) []req {
			return []req{{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": true, "is_read_only": true}`, f.disk)}}
		}, req: func(f files) req {
			return req{"PUT", "/drives/work", fmt.Sprintf(`{"drive_id": "work", "path_on_host": %q, "is_root_device": true, "is_read_only": false}`, f.disk2)}
		}, want: "A root block device already exists!"},
		{name: "bad MAC", req: func(files) req {
			return req{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00"}`}
		}, want: "expected a MAC address"},
		{name: "iface id mismatch", req: func(files) req {
			return req{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth1", "host_dev_name": "tap0"}`}
		}, want: "The id from the path [eth0] does not match the id from the body [eth1]!"},
		{name: "TAP name too long", req: func(files) req {
			return req{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth0", "host_dev_name": "tap-with-a-long-name"}`}
		}, want: "Invalid interface name"},
		{name: "MAC in use", before: func(files) []req {
			return []req{{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"}`}}
		}, req: func(files) req {
			return req{"PUT", "/network-interfaces/eth1", `{"iface_id": "eth1", "host_dev_name": "tap1", "guest_mac": "06:00:ac:10:00:02"}`}
		}, want: "The MAC address is already in use: 06:00:ac:10:00:02"},
		{name: "mtu before v1.16", version: "1.15.1", req: func(files) req {
			return req{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth0", "host_dev_name": "tap0", "mtu": 1500}`}
		}, want: "unknown field `mtu`"},
		{name: "reserved guest_cid", req: func(f files) req {
			return req{"PUT", "/vsock", fmt.Sprintf(`{"guest_cid": 2, "uds_path": %q}`, f.dir+"/v.sock")}
		}, want: "guest_cid 2 is below 3"},
		{name: "existing uds_path", req: func(f files) req {
			return req{"PUT", "/vsock", fmt.Sprintf(`{"guest_cid": 3, "uds_path": %q}`, f.disk)}
		}, want: "Address in use (os error 98)"},
		{name: "vsock without uds_path", req: func(files) req { return req{"PUT", "/vsock", `{"guest_cid": 3}`} },
			want: "missing field `uds_path`"},
		{name: "negative guest_cid", req: func(f files) req {
			return req{"PUT", "/vsock", fmt.Sprintf(`{"guest_cid": -3, "uds_path": %q}`, f.dir+"/v.sock")}
		}, want: "invalid value: integer `-3`, expected u32"},
		{name: "entropy before v1.4", version: "1.3.3", req: func(files) req { return req{"PUT", "/entropy", `{}`} },
			want: "Invalid request method and/or path: PUT entropy."},
		{name: "entropy unknown field", req: func(files) req { return req{"PUT", "/entropy", `{"rate": 1}`} },
			want: "unknown field `rate`"},
		{name: "logger module before v1.6", version: "1.5.1", req: func(f files) req {
			return req{"PUT", "/logger", fmt.Sprintf(`{"log_path": %q, "module": "api_server"}`, f.disk)}
		}, want: "unknown field `module`"},
		{name: "logger level", req: func(f files) req {
			return req{"PUT", "/logger", fmt.Sprintf(`{"log_path": %q, "level": "Loud"}`, f.disk)}
		}, want: "unknown variant `Loud`"},
		{name: "logger without log_path before v1.5", version: "1.4.1", req: func(files) req {
			return req{"PUT", "/logger", `{"level": "Info"}`}
		}, want: "missing field `log_path`"},
		{name: "missing log file before v1.14", version: "1.13.1", req: func(f files) req {
			return req{"PUT", "/logger", fmt.Sprintf(`{"log_path": %q}`, f.dir+"/nope.log")}
		}, want: "Logger error: Failed to open target file: No such file or directory (os error 2)"},
		{name: "metrics twice", before: func(f files) []req {
			return []req{{"PUT", "/metrics", fmt.Sprintf(`{"metrics_path": %q}`, f.disk)}}
		}, req: func(f files) req {
			return req{"PUT", "/metrics", fmt.Sprintf(`{"metrics_path": %q}`, f.disk)}
		}, want: "Reinitialization of metrics not allowed."},
		{name: "unknown action", req: func(files) req { return req{"PUT", "/actions", `{"action_type": "Reboot"}`} },
			want: "unknown variant `Reboot`"},
		{name: "start without a kernel", req: func(files) req { return req{"PUT", "/actions", `{"action_type": "InstanceStart"}`} },
			want: "Cannot start microvm without kernel configuration."},
		{name: "Ctrl-Alt-Del before the start", req: func(files) req { return req{"PUT", "/actions", `{"action_type": "SendCtrlAltDel"}`} },
			want: "The requested operation is not supported before starting the microVM."},
		{name: "pause before the start", req: func(files) req { return req{"PATCH", "/vm", `{"state": "Paused"}`} },
			want: "The requested operation is not supported before starting the microVM."},
		{name: "bad VM state", req: func(files) req { return req{"PATCH", "/vm", `{"state": "Stopped"}`} },
			want: "unknown variant `Stopped`"},
		{name: "machine-config after the start", before: started, req: func(files) req {
			return req{"PUT", "/machine-config", `{"vcpu_count": 2, "mem_size_mib": 128}`}
		}, want: "The requested operation is not supported after starting the microVM."},
		{name: "vsock after the start", before: started, req: func(f files) req {
			return req{"PUT", "/vsock", fmt.Sprintf(`{"guest_cid": 3, "uds_path": %q}`, f.dir+"/v2.sock")}
		}, want: "The requested operation is not supported after starting the microVM."},
		{name: "drive after the start (hotplug needs PCI)", before: started, req: func(f files) req {
			return req{"PUT", "/drives/work", fmt.Sprintf(`{"drive_id": "work", "path_on_host": %q, "is_root_device": false, "is_read_only": false}`, f.disk2)}
		}, want: "PCI is not enabled"},
		{name: "drive after the start before v1.16", version: "1.10.1", before: started, req: func(f files) req {
			return req{"PUT", "/drives/work", fmt.Sprintf(`{"drive_id": "work", "path_on_host": %q, "is_root_device": false, "is_read_only": false}`, f.disk2)}
		}, want: "The requested operation is not supported after starting the microVM."},
		{name: "second start", before: started, req: func(files) req { return req{"PUT", "/actions", `{"action_type": "InstanceStart"}`} },
			want: "The requested operation is not supported after starting the microVM."},
		{name: "snapshot of a running VM", before: started, req: func(f files) req {
			return req{"PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_path": %q, "mem_file_path": %q}`, f.dir+"/snap", f.dir+"/mem")}
		}, want: "must be paused"},
		{name: "snapshot load after boot resources", before: func(f files) []req {
			return []req{{"PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q}`, f.kernel)}}
		}, req: func(f files) req {
			return req{"PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path": %q, "mem_backend": {"backend_type": "File", "backend_path": %q}}`, f.disk, f.disk2)}
		}, want: "Loading a microVM snapshot not allowed after configuring boot-specific resources."},
		{name: "snapshot load with both memory fields", req: func(f files) req {
			return req{"PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path": %q, "mem_file_path": %q, "mem_backend": {"backend_type": "File", "backend_path": %q}}`, f.disk, f.disk2, f.disk2)}
		}, want: "too many fields"},
		{name: "snapshot load track_dirty_pages before v1.13", version: "1.12.1", req: func(f files) req {
			return req{"PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path": %q, "mem_backend": {"backend_type": "File", "backend_path": %q}, "track_dirty_pages": true}`, f.disk, f.disk2)}
		}, want: "unknown field `track_dirty_pages`"},
		{name: "snapshot operation missing", req: func(files) req { return req{"PUT", "/snapshot", `{}`} },
			want: "Missing snapshot operation type."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, sock := Start(t, Config{Version: tt.version})
			c := client{t, sock}
			f := testFiles(t)
			if tt.before != nil {
				for _, r := range tt.before(f) {
					c.mustSend(r.method, r.path, r.body)
				}
			}
			r := tt.req(f)
			status, fault := c.send(r.method, r.path, r.body)
			if status != http.StatusBadRequest || !strings.Contains(fault, tt.want) {
				t.Errorf("%s %s %s: %d %q; want 400 with a fault_message containing %q", r.method, r.path, r.body, status, fault, tt.want)
			}
			reqs := s.Requests()
			if last := reqs[len(reqs)-1]; last.Status != status || last.Fault != fault || last.Path != r.path {
				t.Errorf("recorded %+v, want the refused request", last)
			}
		})
	}
}

// req is one request of a test.
type req struct{ method, path, body string }

// started configures a boot source and starts the microVM.
func started(f files) []req {
	return []req{
		{"PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q}`, f.kernel)},
		{"PUT", "/actions", `{"action_type": "InstanceStart"}`},
	}
}

// Firecracker's HTTP server reads bodies by Content-Length only.
func TestRejectsChunkedBody(t *testing.T) {
	_, sock := Start(t, Config{})
	c := client{t, sock}
	body := io.MultiReader(strings.NewReader(`{"vcpu_count": 1, `), strings.NewReader(`"mem_size_mib": 128}`))
	status, fault := c.sendReader("PUT", "/machine-config", body)
	if status != http.StatusBadRequest || !strings.Contains(fault, "Content-Length") {
		t.Errorf("chunked PUT: %d %q; want 400 naming Content-Length", status, fault)
	}
}

// A whole valid sequence is accepted and the guest behaves: the state
// changes, the agent answers over hybrid vsock once it is up, and
// Ctrl-Alt-Del powers the guest off.
func TestAcceptsAndPlaysTheGuest(t *testing.T) {
	s, sock := Start(t, Config{Greeting: "hi\n", OpenPorts: []int{4096}})
	c := client{t, sock}
	f := testFiles(t)
	vsock := filepath.Join(f.dir, "v.sock")
	// The boot payload's agent key travels in the initramfs.
	key := []byte("the agent key of this test's VM!")
	initrd := filepath.Join(f.dir, "initrd")
	if err := os.WriteFile(initrd, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hvtest.WithBootKey(initrd, initrd, key); err != nil {
		t.Fatal(err)
	}
	for _, r := range []req{
		{"PUT", "/logger", fmt.Sprintf(`{"log_path": %q, "level": "Warning", "show_level": true, "show_log_origin": false}`, f.dir+"/fc.log")},
		{"PUT", "/metrics", fmt.Sprintf(`{"metrics_path": %q}`, f.dir+"/fc.metrics")},
		{"PUT", "/machine-config", `{"vcpu_count": 2, "mem_size_mib": 256}`},
		{"PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q, "initrd_path": %q, "boot_args": "console=ttyS0"}`, f.kernel, initrd)},
		{"PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false, "is_read_only": true}`, f.disk)},
		{"PUT", "/drives/work", fmt.Sprintf(`{"drive_id": "work", "path_on_host": %q, "is_root_device": false, "is_read_only": false}`, f.disk2)},
		{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}`},
		{"PUT", "/vsock", fmt.Sprintf(`{"guest_cid": 3, "uds_path": %q}`, vsock)},
		{"PUT", "/entropy", `{}`},
	} {
		c.mustSend(r.method, r.path, r.body)
	}
	if st := s.State(); st != "Not started" {
		t.Fatalf("state %q before InstanceStart", st)
	}
	if _, err := os.Stat(vsock); err != nil {
		t.Fatalf("PUT /vsock did not bind the uds_path: %v", err)
	}
	c.mustSend("PUT", "/actions", `{"action_type": "InstanceStart"}`)

	conn, err := net.Dial("unix", vsock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "CONNECT 1024\n")
	br := bufio.NewReader(conn)
	ack, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(ack, "OK ") {
		t.Fatalf("reply to CONNECT: %q, %v", ack, err)
	}
	greeting, _ := br.ReadString('\n')
	if greeting != "hi\n" {
		t.Errorf("greeting %q, want %q", greeting, "hi\n")
	}
	ctx := context.Background()
	agent, err := agentmux.Upgrade(ctx, struct {
		io.Reader
		io.WriteCloser
	}{br, conn}, key)
	if err != nil {
		t.Fatalf("upgrade with the boot payload's key: %v", err)
	}
	defer agent.Close()
	health, err := agent.Health(ctx)
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	if health.RootMount != "/dev/vdb" {
		t.Errorf("RootMount %q, want /dev/vdb", health.RootMount)
	}
	probe := func(port int) (p agentproto.ProbeResult, err error) {
		err = agent.Call(ctx, agentproto.TypeProbeTCP, agentproto.ProbeParams{Port: port}, &p)
		return p, err
	}
	if p, err := probe(4096); err != nil || !p.Open {
		t.Errorf("probe of port 4096: %+v, %v; want open", p, err)
	}
	if p, err := probe(22); err != nil || p.Open {
		t.Errorf("probe of port 22: %+v, %v; want closed", p, err)
	}
	var keys []string
	if err := agent.Call(ctx, agentproto.TypeHostKeys, nil, &keys); err != nil || len(keys) != 1 || keys[0] != FakeHostKey {
		t.Errorf("host keys: %v, %v", keys, err)
	}

	// Another port: nothing listens, closed without a reply.
	other, err := net.Dial("unix", vsock)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	io.WriteString(other, "CONNECT 52\n")
	if b, err := io.ReadAll(other); len(b) != 0 || err != nil {
		t.Errorf("CONNECT 52: read %q, %v; want the connection closed without a reply", b, err)
	}

	c.mustSend("PATCH", "/vm", `{"state": "Paused"}`)
	if st := s.State(); st != "Paused" {
		t.Errorf("state %q after pausing", st)
	}
	c.mustSend("PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_path": %q, "mem_file_path": %q, "snapshot_type": "Full"}`, f.dir+"/snap", f.dir+"/mem"))
	c.mustSend("PATCH", "/vm", `{"state": "Resumed"}`)
	c.mustSend("PUT", "/actions", `{"action_type": "SendCtrlAltDel"}`)
	select {
	case <-s.PoweredOff():
	case <-time.After(10 * time.Second):
		t.Fatal("the guest did not power off after Ctrl-Alt-Del")
	}
	for _, r := range s.Requests() {
		if r.Status >= 300 {
			t.Errorf("refused: %+v", r)
		}
	}
}

// The snapshot requests' bodies are checked against the release played:
// the fields each release's LoadSnapshotConfig, CreateSnapshotParams and
// Vm have (src/vmm/src/vmm_config/snapshot.rs and the API definition at
// the release tags), refused as unknown where it lacks them.
func TestSnapshotSchemaByVersion(t *testing.T) {
	const load = `{"snapshot_path": "/s", "mem_backend": {"backend_type": "File", "backend_path": "/m"}, "resume_vm": false%s}`
	tests := []struct {
		version, method, path, body string
		unknown                     string // "": the body passes the schema
	}{
		{"1.5.0", "PUT", "/snapshot/create", `{"snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m", "version": "1.5.0"}`, ""},
		{"1.6.0", "PUT", "/snapshot/create", `{"snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m", "version": "1.6.0"}`, "version"},
		{"1.1.0", "PUT", "/snapshot/create", `{"snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m"}`, ""},
		{"1.16.1", "PUT", "/snapshot/create", `{"snapshot_type": "Full", "snapshot_path": "/s", "mem_file_path": "/m"}`, ""},
		{"1.1.0", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "enable_diff_snapshots": true`), ""},
		{"1.11.0", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}]`), "network_overrides"},
		{"1.12.0", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap1"}]`), ""},
		{"1.12.1", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "track_dirty_pages": true`), "track_dirty_pages"},
		{"1.13.0", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "track_dirty_pages": true`), ""},
		{"1.15.1", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "vsock_override": {"uds_path": "v.sock"}`), "vsock_override"},
		{"1.16.0", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "vsock_override": {"uds_path": "v.sock"}`), ""},
		{"1.14.3", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "clock_realtime": true`), "clock_realtime"},
		{"1.14.4", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "clock_realtime": true`), ""},
		{"1.15.0", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "clock_realtime": true`), "clock_realtime"},
		{"1.15.1", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "clock_realtime": true`), ""},
		{"1.16.1", "PUT", "/snapshot/load", fmt.Sprintf(load, `, "huge_pages": "None"`), "huge_pages"},
		{"1.16.1", "PUT", "/snapshot/load", `{"snapshot_path": "/s", "mem_backend": {"backend_type": "Memory", "backend_path": "/m"}}`, "Memory"},
		{"1.16.1", "PATCH", "/vm", `{"state": "Running"}`, "Running"},
		{"1.16.1", "PATCH", "/vm", `{"state": "Paused", "force": true}`, "force"},
	}
	for _, tt := range tests {
		t.Run(tt.version+" "+tt.path+" "+tt.unknown, func(t *testing.T) {
			_, sock := Start(t, Config{Version: tt.version})
			status, fault := client{t, sock}.send(tt.method, tt.path, tt.body)
			serde := strings.Contains(fault, "deserializing the json body")
			if tt.unknown == "" {
				if serde {
					t.Errorf("v%s refused %s as a body it does not know: %s", tt.version, tt.body, fault)
				}
				return
			}
			if status != http.StatusBadRequest || !serde || !strings.Contains(fault, "`"+tt.unknown+"`") {
				t.Errorf("v%s answered %s with %d %q; want its deserializer to refuse `%s`", tt.version, tt.body, status, fault, tt.unknown)
			}
		})
	}
}

// A snapshot keeps the guest: a stand-in loading another's snapshot
// reopens its devices, answers its agent with the saved key (and, after
// an identity call that sets one, with the new key only), and reports the
// saved configuration in GET /vm/config; a load reads the files only.
func TestSnapshotKeepsTheGuest(t *testing.T) {
	f := testFiles(t)
	key := make([]byte, agentmux.KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	initrd := filepath.Join(f.dir, "initrd")
	if err := hvtest.WithBootKey(initrd, f.disk2, key); err != nil {
		t.Fatal(err)
	}
	_, sock := Start(t, Config{})
	c := client{t, sock}
	vsock := filepath.Join(f.dir, "v1.sock")
	c.mustSend("PUT", "/boot-source", fmt.Sprintf(`{"kernel_image_path": %q, "initrd_path": %q}`, f.kernel, initrd))
	c.mustSend("PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false, "is_read_only": true}`, f.disk))
	c.mustSend("PUT", "/network-interfaces/eth0", `{"iface_id": "eth0", "host_dev_name": "tap-a"}`)
	c.mustSend("PUT", "/vsock", fmt.Sprintf(`{"guest_cid": 3, "uds_path": %q}`, vsock))
	c.mustSend("PUT", "/actions", `{"action_type": "InstanceStart"}`)
	c.mustSend("PATCH", "/vm", `{"state": "Paused"}`)
	state, mem := filepath.Join(f.dir, "state"), filepath.Join(f.dir, "mem")
	c.mustSend("PUT", "/snapshot/create", fmt.Sprintf(`{"snapshot_type": "Full", "snapshot_path": %q, "mem_file_path": %q}`, state, mem))
	for _, p := range []string{state, mem} {
		os.Chmod(p, 0o400) // a load only reads
	}

	srv2, sock2 := Start(t, Config{})
	c2 := client{t, sock2}
	vsock2 := filepath.Join(f.dir, "v2.sock")
	c2.mustSend("PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path": %q, "mem_backend": {"backend_type": "File", "backend_path": %q}, "resume_vm": false, "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap-b"}], "vsock_override": {"uds_path": %q}}`, state, mem, vsock2))
	if srv2.State() != statePaused {
		t.Errorf("state after a load with resume_vm false: %q", srv2.State())
	}
	if status, fault := c2.send("PUT", "/drives/root", fmt.Sprintf(`{"drive_id": "root", "path_on_host": %q, "is_root_device": false, "is_read_only": true}`, f.disk)); status != http.StatusBadRequest {
		t.Errorf("a drive after the load: %d %s; want it refused", status, fault)
	}
	c2.mustSend("PATCH", "/vm", `{"state": "Resumed"}`)
	cfg := getJSON(t, sock2, "/vm/config")
	if ifaces, _ := cfg["network-interfaces"].([]any); len(ifaces) != 1 || ifaces[0].(map[string]any)["host_dev_name"] != "tap-b" {
		t.Errorf("GET /vm/config network-interfaces after the override: %v", cfg["network-interfaces"])
	}
	if v, _ := cfg["vsock"].(map[string]any); v["uds_path"] != vsock2 {
		t.Errorf("GET /vm/config vsock after the override: %v", cfg["vsock"])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess := dialAgent(t, ctx, vsock2, key)
	newKey := make([]byte, agentmux.KeySize)
	newKey[0] = 0xff
	var res agentproto.IdentityResult
	if err := sess.Call(ctx, agentproto.MethodIdentity, agentproto.Identity{TimeUnixNano: 1, HostKeys: true, Key: newKey}, &res); err != nil {
		t.Fatalf("identity: %v", err)
	}
	sess.Close()
	if len(res.HostKeys) != 1 || res.HostKeys[0] == FakeHostKey {
		t.Errorf("identity host keys: %v", res.HostKeys)
	}
	if ids := srv2.Identities(); len(ids) != 1 || !ids[0].HostKeys {
		t.Errorf("recorded identities: %+v", ids)
	}
	dialAgent(t, ctx, vsock2, newKey).Close()
	conn := connectAgent(t, vsock2)
	if _, err := agentmux.Upgrade(ctx, conn, key); err == nil {
		t.Error("the old key still opens a session after identity set a new one")
	}
	if err := srv2.Close(); err != nil {
		t.Fatal(err)
	}
	// A second load of the same snapshot, into a third stand-in, works
	// (the files were only read) and binds the socket the snapshot names.
	_, sock3 := Start(t, Config{})
	os.Remove(vsock)
	client{t, sock3}.mustSend("PUT", "/snapshot/load", fmt.Sprintf(`{"snapshot_path": %q, "mem_backend": {"backend_type": "File", "backend_path": %q}, "resume_vm": true}`, state, mem))
}

func getJSON(t *testing.T, sock, path string) map[string]any {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://localhost" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// connectAgent opens a hybrid vsock connection to the agent's port.
func connectAgent(t *testing.T, vsock string) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", vsock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "CONNECT %d\n", agentproto.VsockPort)
	// Byte by byte: what follows the line is the agent's.
	var line []byte
	b := make([]byte, 1)
	for len(line) == 0 || line[len(line)-1] != '\n' {
		if _, err := conn.Read(b); err != nil {
			t.Fatalf("CONNECT: %q, %v", line, err)
		}
		line = append(line, b[0])
	}
	if !strings.HasPrefix(string(line), "OK ") {
		t.Fatalf("CONNECT: %q", line)
	}
	return conn
}

func dialAgent(t *testing.T, ctx context.Context, vsock string, key []byte) *agentmux.Session {
	t.Helper()
	sess, err := agentmux.Upgrade(ctx, connectAgent(t, vsock), key)
	if err != nil {
		t.Fatalf("agent session: %v", err)
	}
	return sess
}
