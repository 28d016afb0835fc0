package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/spf13/cobra"
)

func newVMPortCmd(app *App) *cobra.Command {
	var (
		rm     bool
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "port NAME [GUESTPORT[:HOSTPORT]] [--rm GUESTPORT]",
		Short: "Publish a guest port on the host's loopback, list or remove published ports",
		Long: `Publish a TCP port of the VM's guest on 127.0.0.1 of the host. Connections are
carried through the agent channel (vsock or virtio-serial), not the network:
they work with --egress none, for a rootless bangerd, and without a route to
the bridge. The guest end connects to the port on the guest's own loopback
(127.0.0.1, then ::1), so a service listening on localhost in the guest is
reachable. Without HOSTPORT a free port is picked.

Published ports are listed by vm show, survive a daemon restart, and are
removed with the VM. The listener is on the host's loopback only.`,
		Example: `  banger vm port demo                  # list
  banger vm port demo 4096             # opencode, on a free host port
  banger vm port demo 3000:8080        # guest 3000 on 127.0.0.1:8080
  banger vm port demo --rm 3000`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError("vm port takes a vm name and at most one GUESTPORT[:HOSTPORT]: banger vm port NAME [GUESTPORT[:HOSTPORT]]")
			}
			if rm && len(args) != 2 {
				return usageError("--rm needs the guest port to remove: banger vm port NAME --rm GUESTPORT")
			}
			return nil
		},
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			name := args[0]
			if len(args) == 1 {
				ports, err := cl.Ports(ctx, name)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(app.Stdout, api.PortList{Ports: ports})
				}
				if len(ports) == 0 {
					fmt.Fprintf(app.Stdout, "vm %s publishes no ports: `banger vm port %s GUESTPORT` publishes one\n", name, name)
					return nil
				}
				t := newTable(app.Stdout, "GUEST", "HOST", "URL")
				for _, p := range ports {
					t.row(strconv.Itoa(p.GuestPort), fmt.Sprintf("%s:%d", p.Address, p.HostPort), portURL(p))
				}
				return t.flush()
			}
			if rm {
				g, err := strconv.ParseUint(args[1], 10, 16)
				if err != nil || g == 0 {
					return usageError("--rm %q: give the guest port, a number from 1 to 65535", args[1])
				}
				if err := cl.UnpublishPort(ctx, name, int(g)); err != nil {
					return err
				}
				fmt.Fprintf(app.Stdout, "guest port %d of vm %s is no longer published\n", g, name)
				return nil
			}
			req, err := parsePublish(args[1])
			if err != nil {
				return usageError("%q: %v", args[1], err)
			}
			p, err := cl.PublishPort(ctx, name, req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, p)
			}
			fmt.Fprintf(app.Stdout, "guest port %d of vm %s: %s\n", p.GuestPort, name, portURL(p))
			if p.Warning != "" {
				fmt.Fprintf(app.Stderr, "warning: %s\n", p.Warning)
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&rm, "rm", false, "remove the published guest port given")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// portURL is where a published port answers, as a URL to open.
func portURL(p api.PublishedPort) string {
	return fmt.Sprintf("http://%s:%d", p.Address, p.HostPort)
}

// publishedURL is the loopback URL of guestPort when v publishes it.
func publishedURL(v api.VM, guestPort int) (string, bool) {
	for _, p := range v.Ports {
		if p.GuestPort == guestPort {
			return portURL(p), true
		}
	}
	return "", false
}

// publishProbes publishes, on a free loopback port each, the ports of the
// image's services (its readiness probes: opencode's 4096 on the agents
// image) that v does not publish yet, so vm run prints URLs that work
// from the host whatever the network. A failure is a warning: the VM is
// up, and the bridge URL is printed instead.
func publishProbes(ctx context.Context, app *App, cl *client.Client, v api.VM) api.VM {
	img, err := cl.Image(ctx, v.Image)
	if err != nil {
		return v
	}
	for _, probe := range img.Probes {
		if _, ok := publishedURL(v, probe.Port); ok || probe.Port == 0 {
			continue
		}
		p, err := cl.PublishPort(ctx, v.Name, api.PublishPortRequest{GuestPort: probe.Port})
		if err != nil {
			fmt.Fprintf(app.Stderr, "vm run: could not publish %s's port %d: %v\n", probe.Name, probe.Port, err)
			continue
		}
		v.Ports = append(v.Ports, p)
	}
	return v
}
