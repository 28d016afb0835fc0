package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/portfwd"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// Published ports (`banger vm port`): the store's published_ports rows are
// what is published; d.ports holds a loopback listener for each, relaying
// through the VM's agent (internal/host/portfwd). The listeners are opened
// again at every daemon start and closed when their VM is deleted (the
// rows go with the VM by cascade).

// portRoutes registers the published-port endpoints.
func (d *Daemon) portRoutes(handle func(pattern string, h func(w http.ResponseWriter, r *http.Request) error)) {
	v := "/" + api.Version
	handle("GET "+v+"/vms/{name}/ports", d.listPorts)
	handle("POST "+v+"/vms/{name}/ports", d.publishPort)
	handle("DELETE "+v+"/vms/{name}/ports/{guest_port}", d.unpublishPort)
}

// openPorts makes the port manager and opens a listener for every
// recorded port; one that cannot listen again (its host port taken
// meanwhile) is logged with the fix, and stays recorded.
func (d *Daemon) openPorts(ctx context.Context) {
	d.ports = &portfwd.Manager{Dial: d.dialGuest, Log: d.log, Allow: ownerOnly}
	recs, err := d.store.Ports(ctx, "")
	if err != nil {
		d.log.Error("reading the published ports; none are listening", "error", err)
		return
	}
	for _, p := range recs {
		if _, err := d.ports.Publish(p.VMID, p.GuestPort, p.HostPort); err != nil {
			d.log.Error("cannot listen again for a published port: free the host port and restart bangerd, or remove it with `banger vm port NAME --rm GUESTPORT`",
				"vm", p.VMID, "guest_port", p.GuestPort, "host_port", p.HostPort, "error", err)
		}
	}
}

// dialGuest reaches a guest port through the VM's agent. A VM that no
// longer exists is portfwd.ErrVMGone, so its listeners close.
func (d *Daemon) dialGuest(ctx context.Context, vmID string, guestPort int) (net.Conn, error) {
	_, sess, err := d.vms.Agent(ctx, vmID)
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Code == api.CodeNotFound {
			return nil, fmt.Errorf("%w: %v", portfwd.ErrVMGone, err)
		}
		return nil, err
	}
	return sess.Dial(ctx, guestPort)
}

// publish listens for guestPort of v and records it.
func (d *Daemon) publish(ctx context.Context, v vm.VM, req api.PublishPortRequest) (api.PublishedPort, error) {
	p, err := d.ports.Publish(v.ID, req.GuestPort, req.HostPort)
	if err != nil {
		return p, err
	}
	if err := d.store.AddPort(ctx, store.PublishedPort{VMID: v.ID, GuestPort: p.GuestPort, HostPort: p.HostPort}); err != nil {
		d.ports.Unpublish(v.ID, p.GuestPort)
		if errors.Is(err, store.ErrConflict) {
			return api.PublishedPort{}, api.Errorf(api.CodeAlreadyExists, "guest port %d of VM %s or host port %d is already published: see `banger vm port %s`", req.GuestPort, v.Name, p.HostPort, v.Name)
		}
		return api.PublishedPort{}, err
	}
	return p, nil
}

// checkPublish refuses a create request's bad ports before anything is
// allocated.
func checkPublish(reqs []api.PublishPortRequest) error {
	seen := map[int]bool{}
	for _, r := range reqs {
		if r.GuestPort < 1 || r.GuestPort > 65535 {
			return api.FieldErrorf("publish", "GUESTPORT[:HOSTPORT], ports 1 to 65535", "guest port %d is not a TCP port: give 1 to 65535", r.GuestPort)
		}
		if r.HostPort < 0 || r.HostPort > 65535 {
			return api.FieldErrorf("publish", "GUESTPORT[:HOSTPORT], ports 1 to 65535", "host port %d is not a TCP port: give 1 to 65535, or none for a free one", r.HostPort)
		}
		if seen[r.GuestPort] {
			return api.FieldErrorf("publish", "each guest port once", "guest port %d is published twice: give it once", r.GuestPort)
		}
		seen[r.GuestPort] = true
	}
	return nil
}

// publishCreated publishes what a create request asked for, once the VM
// exists. A failure leaves the VM and names how to publish by hand.
func (d *Daemon) publishCreated(ctx context.Context, v vm.VM, reqs []api.PublishPortRequest, run vm.Progress) error {
	if len(reqs) == 0 {
		return nil
	}
	run.Stage("publish")
	for _, r := range reqs {
		p, err := d.publish(ctx, v, r)
		if err != nil {
			return fmt.Errorf("VM %s was created, but publishing guest port %d failed: %w; publish it with `banger vm port %s %d` (another host port, or none for a free one)", v.Name, r.GuestPort, err, v.Name, r.GuestPort)
		}
		run.Detail("guest port %d on http://%s:%d", p.GuestPort, p.Address, p.HostPort)
	}
	return nil
}

// closePortsAfter returns what to call once the VM named name was
// deleted: it closes its listeners (the rows went by cascade).
func (d *Daemon) closePortsAfter(ctx context.Context, name string) func() {
	v, err := d.vms.Get(ctx, name)
	if err != nil {
		return func() {}
	}
	return func() { d.ports.CloseVM(v.ID) }
}

// portLeaks reports listeners whose VM is gone (for `banger verify`).
func (d *Daemon) portLeaks(ctx context.Context) []api.Leak {
	var leaks []api.Leak
	for _, id := range d.ports.VMs() {
		if _, err := d.store.GetVM(ctx, id); errors.Is(err, store.ErrNotFound) {
			for _, p := range d.ports.Ports(id) {
				leaks = append(leaks, api.Leak{Kind: "port", What: fmt.Sprintf("%s:%d", p.Address, p.HostPort),
					Detail: fmt.Sprintf("a published port of VM %s, which no longer exists: restart bangerd to close it", id)})
			}
		}
	}
	return leaks
}

func (d *Daemon) listPorts(w http.ResponseWriter, r *http.Request) error {
	v, err := d.vms.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	list := api.PortList{Ports: d.vms.API(r.Context(), v).Ports}
	if list.Ports == nil {
		list.Ports = []api.PublishedPort{}
	}
	return writeJSON(w, http.StatusOK, list)
}

func (d *Daemon) publishPort(w http.ResponseWriter, r *http.Request) error {
	var req api.PublishPortRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v, err := d.vms.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	p, err := d.publish(r.Context(), v, req)
	if err != nil {
		return err
	}
	if v.State == api.VMRunning {
		p.Warning = d.tryPort(r.Context(), v, p.GuestPort)
	}
	return writeJSON(w, http.StatusCreated, p)
}

func (d *Daemon) unpublishPort(w http.ResponseWriter, r *http.Request) error {
	name, raw := r.PathValue("name"), r.PathValue("guest_port")
	port, err := strconv.Atoi(raw)
	if err != nil || port < 1 || port > 65535 {
		return api.FieldErrorf("guest_port", "a TCP port, 1 to 65535", "guest port %q is not a TCP port: give 1 to 65535", raw)
	}
	v, err := d.vms.Get(r.Context(), name)
	if err != nil {
		return err
	}
	if err := d.store.RemovePort(r.Context(), v.ID, port); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "guest port %d of VM %s is not published: see `banger vm port %s`", port, v.Name, v.Name)
		}
		return err
	}
	d.ports.Unpublish(v.ID, port)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// tryPort makes one trial connection to a running VM's guest port through
// its agent and says what is wrong, with the fix ("" when it answers).
func (d *Daemon) tryPort(ctx context.Context, v vm.VM, guestPort int) string {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := d.dialGuest(ctx, v.ID, guestPort)
	switch {
	case err == nil:
		c.Close()
		return ""
	case errors.Is(err, agentmux.ErrDialUnsupported):
		return fmt.Sprintf("the agent of VM %s predates port publishing, so connections are closed: restart the VM with `banger vm restart %s`", v.Name, v.Name)
	case errors.Is(err, agentmux.ErrPortNotListening):
		return fmt.Sprintf("nothing listens on guest port %d yet (the service is not up yet): connections are closed until it listens on the guest's 127.0.0.1 or ::1", guestPort)
	}
	return fmt.Sprintf("a trial connection to guest port %d failed: %v", guestPort, err)
}

// ownerOnly lets through a connection to a published port only from the
// daemon's owner and root, as the guests' own addresses are (SPEC §8: only
// the owner reaches the guests' services).
func ownerOnly(c net.Conn) error {
	uid, err := portfwd.PeerUID(c)
	if err != nil {
		return err
	}
	if uid != uint32(os.Getuid()) && uid != 0 {
		return fmt.Errorf("uid %d is not the daemon's owner (%d) or root", uid, os.Getuid())
	}
	return nil
}
