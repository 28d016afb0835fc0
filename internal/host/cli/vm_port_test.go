package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
)

// portDaemon is a recording fake of the port routes: demo publishes
// guest 4096 on 127.0.0.1:41000; a publish answers host port 42000 when
// none is asked for; host port 8080 is in use.
type portDaemon struct {
	mu       sync.Mutex
	requests []string
	ports    []api.PublishedPort
}

func (p *portDaemon) install(d *fakeDaemon) {
	p.ports = []api.PublishedPort{{GuestPort: 4096, HostPort: 41000, Address: "127.0.0.1"}}
	record := func(r *http.Request, body string) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.Path+body)
		p.mu.Unlock()
	}
	d.Mux.HandleFunc("GET /v1/vms/{name}/ports", func(w http.ResponseWriter, r *http.Request) {
		record(r, "")
		if r.PathValue("name") != "demo" {
			writeJSON(w, http.StatusOK, api.PortList{Ports: []api.PublishedPort{}})
			return
		}
		writeJSON(w, http.StatusOK, api.PortList{Ports: p.ports})
	})
	d.Mux.HandleFunc("POST /v1/vms/{name}/ports", func(w http.ResponseWriter, r *http.Request) {
		var req api.PublishPortRequest
		json.NewDecoder(r.Body).Decode(&req)
		b, _ := json.Marshal(req)
		record(r, " "+string(b))
		if req.HostPort == 8080 {
			writeAPIError(w, http.StatusConflict, *api.Errorf(api.CodeAlreadyExists, "host port 8080 on 127.0.0.1 is in use: pick another HOSTPORT, or leave it out to get a free one"))
			return
		}
		host := req.HostPort
		if host == 0 {
			host = 42000
		}
		out := api.PublishedPort{GuestPort: req.GuestPort, HostPort: host, Address: "127.0.0.1"}
		if req.GuestPort == 5000 {
			out.Warning = "nothing listens on guest port 5000 yet (the service is not up yet)"
		}
		writeJSON(w, http.StatusCreated, out)
	})
	d.Mux.HandleFunc("DELETE /v1/vms/{name}/ports/{port}", func(w http.ResponseWriter, r *http.Request) {
		record(r, "")
		w.WriteHeader(http.StatusNoContent)
	})
}

func TestVMPortCommand(t *testing.T) {
	d := startFakeDaemon(t)
	p := &portDaemon{}
	p.install(d)
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		wantErr  string
		wantCode int
		wantReq  string // the request the daemon got, "" for none
	}{
		{name: "list", args: []string{"vm", "port", "demo"}, wantReq: "GET /v1/vms/demo/ports",
			wantOut: "GUEST  HOST             URL\n4096   127.0.0.1:41000  http://127.0.0.1:41000\n"},
		{name: "list none", args: []string{"vm", "port", "idle"}, wantReq: "GET /v1/vms/idle/ports",
			wantOut: "vm idle publishes no ports: `banger vm port idle GUESTPORT` publishes one\n"},
		{name: "publish on a free port", args: []string{"vm", "port", "demo", "3000"}, wantReq: `POST /v1/vms/demo/ports {"guest_port":3000}`,
			wantOut: "guest port 3000 of vm demo: http://127.0.0.1:42000\n"},
		{name: "publish on a chosen port", args: []string{"vm", "port", "demo", "3000:8081"}, wantReq: `POST /v1/vms/demo/ports {"guest_port":3000,"host_port":8081}`,
			wantOut: "guest port 3000 of vm demo: http://127.0.0.1:8081\n"},
		{name: "publish with a warning", args: []string{"vm", "port", "demo", "5000"}, wantReq: `POST /v1/vms/demo/ports {"guest_port":5000}`,
			wantOut: "guest port 5000 of vm demo: http://127.0.0.1:42000\n", wantErr: "warning: nothing listens on guest port 5000 yet (the service is not up yet)"},
		{name: "host port in use", args: []string{"vm", "port", "demo", "3000:8080"}, wantReq: `POST /v1/vms/demo/ports {"guest_port":3000,"host_port":8080}`,
			wantCode: ExitError, wantErr: "pick another HOSTPORT, or leave it out"},
		{name: "remove", args: []string{"vm", "port", "demo", "--rm", "3000"}, wantReq: "DELETE /v1/vms/demo/ports/3000",
			wantOut: "guest port 3000 of vm demo is no longer published\n"},
		{name: "remove without a port", args: []string{"vm", "port", "demo", "--rm"}, wantCode: ExitUsage, wantErr: "--rm needs the guest port"},
		{name: "not a port", args: []string{"vm", "port", "demo", "http"}, wantCode: ExitUsage, wantErr: `guest port "http" is not a number from 1 to 65535`},
		{name: "host port zero", args: []string{"vm", "port", "demo", "80:0"}, wantCode: ExitUsage, wantErr: "leave it out to pick a free one"},
		{name: "no name", args: []string{"vm", "port"}, wantCode: ExitUsage, wantErr: "vm port takes a vm name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.mu.Lock()
			p.requests = nil
			p.mu.Unlock()
			out, errOut, code := d.run(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
			if out != tt.wantOut {
				t.Errorf("stdout:\n%q\nwant:\n%q", out, tt.wantOut)
			}
			p.mu.Lock()
			got := strings.Join(p.requests, "\n")
			p.mu.Unlock()
			if got != tt.wantReq {
				t.Errorf("requests %q, want %q", got, tt.wantReq)
			}
		})
	}
}

// The next steps print an image service's URL on the loopback when its
// port is published, the bridge address otherwise; vm run publishes the
// image's service ports first.
func TestNextStepsServiceURLs(t *testing.T) {
	d := startFakeDaemon(t)
	p := &portDaemon{}
	p.install(d)
	d.Mux.HandleFunc("GET /v1/images/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Image{Name: "agents", Probes: []api.Probe{{Name: "opencode", Kind: "tcp", Port: 4096}, {Name: "docs", Kind: "tcp", Port: 8000}}})
	})
	var out, errb bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errb, Env: config.MapEnv(d.Env), UID: os.Getuid(), DaemonBin: fakeDaemonBin}
	ctx := context.Background()
	cl, err := app.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := api.VM{Name: "demo", Image: "agents", IP: "172.30.0.5", Hypervisor: "qemu",
		Ports: []api.PublishedPort{{GuestPort: 4096, HostPort: 41000, Address: "127.0.0.1"}}}
	if err := printNextSteps(ctx, app, cl, v, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  opencode: http://127.0.0.1:41000\n", "  docs: http://172.30.0.5:8000\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("next steps lack %q:\n%s", want, out.String())
		}
	}

	v.Ports = nil
	v = publishProbes(ctx, app, cl, v)
	p.mu.Lock()
	got := strings.Join(p.requests, "\n")
	p.mu.Unlock()
	want := "POST /v1/vms/demo/ports {\"guest_port\":4096}\nPOST /v1/vms/demo/ports {\"guest_port\":8000}"
	if got != want {
		t.Errorf("vm run published %q, want %q", got, want)
	}
	if url, ok := publishedURL(v, 8000); !ok || url != "http://127.0.0.1:42000" {
		t.Errorf("after publishing, 8000 is at %q (%v)", url, ok)
	}
}

// vm show lists each published port with its URL and how to remove it.
func TestVMShowPorts(t *testing.T) {
	d := startFakeDaemon(t)
	d.Mux.HandleFunc("GET /v1/vms/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.VM{Name: "demo", State: api.VMRunning, SSH: "banger vm ssh demo",
			Ports: []api.PublishedPort{{GuestPort: 4096, HostPort: 41000, Address: "127.0.0.1"}}})
	})
	out, errOut, code := d.run(t, "vm", "show", "demo")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "\nport ") || !strings.Contains(out, " guest 4096 on http://127.0.0.1:41000 (`banger vm port demo --rm 4096` removes it)\n") {
		t.Errorf("vm show lacks the port row:\n%s", out)
	}
}
