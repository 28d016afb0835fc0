package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// createFlags are the flags of vm create, shared with vm run.
type createFlags struct {
	req          api.CreateVMRequest
	memory, disk string
	egress       string
	publish      []string
}

func (cf *createFlags) bind(f *pflag.FlagSet) {
	f.StringVar(&cf.req.Name, "name", "", "VM name (default: generated, e.g. brisk-otter)")
	f.StringVar(&cf.req.Image, "image", "", "image to boot (default: the newest ready image)")
	cf.bindShape(f)
	f.BoolVar(&cf.req.Cold, "cold", false, "boot the image even when it has a warm snapshot of this shape (see banger image warm)")
	f.StringVar(&cf.egress, "egress", "", `what the guest may reach: "nat" (default), "none", or an allowlist such as "github.com,*.npmjs.org:443,@agents" (see banger vm egress)`)
	f.StringArrayVar(&cf.publish, "publish", nil, "publish a guest port on the host's loopback: GUESTPORT[:HOSTPORT] (repeatable; see banger vm port)")
}

// bindShape binds the flags that say a VM's shape: vCPUs, memory, work
// disk and hypervisor (vm create and run, image warm).
func (cf *createFlags) bindShape(f *pflag.FlagSet) {
	f.IntVar(&cf.req.VCPUs, "vcpus", 0, "vCPUs (default from config: vm.vcpus)")
	f.StringVar(&cf.memory, "memory", "", "memory, e.g. 2GiB (default from config: vm.memory)")
	f.StringVar(&cf.disk, "disk", "", "work disk (/root) size, e.g. 16GiB (default from config: vm.disk)")
	f.StringVar(&cf.req.Hypervisor, "hypervisor", "", "qemu or firecracker (default from config: hypervisor)")
}

// request turns the flags into a create request.
func (cf *createFlags) request() (api.CreateVMRequest, error) {
	req := cf.req
	if cf.memory != "" {
		n, err := config.ParseSize(cf.memory)
		if err != nil {
			return req, usageError("--memory %q: %v", cf.memory, err)
		}
		if n%(1<<20) != 0 || n <= 0 {
			return req, usageError("--memory %q: want a whole number of MiB, e.g. 2GiB", cf.memory)
		}
		req.MemoryMiB = int(n >> 20)
	}
	if cf.disk != "" {
		n, err := config.ParseSize(cf.disk)
		if err != nil {
			return req, usageError("--disk %q: %v", cf.disk, err)
		}
		req.DiskBytes = n
	}
	if cf.egress != "" {
		p := parseEgressFlag(cf.egress)
		req.Egress = &p
	}
	for _, spec := range cf.publish {
		pr, err := parsePublish(spec)
		if err != nil {
			return req, usageError("--publish %q: %v", spec, err)
		}
		req.Publish = append(req.Publish, pr)
	}
	return req, nil
}

// parseEgressFlag turns --egress's value into a policy: "nat", "none",
// or a comma-separated allowlist (the daemon checks its entries).
func parseEgressFlag(s string) api.EgressPolicy {
	switch s = strings.TrimSpace(s); s {
	case api.EgressNAT, api.EgressNone:
		return api.EgressPolicy{Mode: s}
	}
	p := api.EgressPolicy{Mode: api.EgressAllow}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			p.Allow = append(p.Allow, e)
		}
	}
	return p
}

// parsePublish reads GUESTPORT[:HOSTPORT].
func parsePublish(s string) (api.PublishPortRequest, error) {
	guest, host, hasHost := strings.Cut(s, ":")
	var r api.PublishPortRequest
	g, err := strconv.ParseUint(guest, 10, 16)
	if err != nil || g == 0 {
		return r, fmt.Errorf("guest port %q is not a number from 1 to 65535", guest)
	}
	r.GuestPort = int(g)
	if hasHost {
		h, err := strconv.ParseUint(host, 10, 16)
		if err != nil || h == 0 {
			return r, fmt.Errorf("host port %q is not a number from 1 to 65535 (leave it out to pick a free one)", host)
		}
		r.HostPort = int(h)
	}
	return r, nil
}

// createVM runs a create operation to its end and returns the VM,
// printing the operation's id and its stages (or, with asJSON, its events).
func createVM(ctx context.Context, app *App, cl *client.Client, req api.CreateVMRequest, asJSON bool) (api.VM, error) {
	return frontend.CreateVMWith(ctx, cl, req, createPrinter(app, asJSON), frontend.FollowOptions{Reconnect: app.Client})
}

// createPrinter renders a create's events, naming the operation before the
// first one (the snapshot, which carries it).
func createPrinter(app *App, asJSON bool) func(api.OperationEvent) {
	print := eventPrinter(app, asJSON)
	announced := asJSON
	return func(ev api.OperationEvent) {
		if !announced {
			announced = true
			fmt.Fprintf(app.Stderr, "vm create: operation %s\n", ev.Operation.ID)
		}
		print(ev)
	}
}

func newVMCreateCmd(app *App) *cobra.Command {
	var (
		cf     createFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "create [--name N] [--image I] [--vcpus N] [--memory SIZE] [--disk SIZE] [--hypervisor H] [--cold]",
		Short: "Create and boot a VM, printing each stage live",
		Long: `Create a VM and boot it, as an operation with live stages: allocate name and
address → the VM's upper disk over the image's shared read-only root (older
images: a copy of the rootfs) → clone and grow the work disk → sync auth files →
take a TAP from the pool → launch the hypervisor → wait for the guest agent →
wait for the image's readiness probes (e.g. opencode on 4096) → ready.
Without --image the newest ready image is used; without --name a friendly
one is generated. Sizes take binary units (512MiB, 2GiB).

When the image has a warm snapshot of the VM's shape (` + "`banger image warm`" + `),
the VM is restored from it instead of booted: the stages show restore in
place of launch and agent health, and the VM gets its own address, MAC,
hostname, machine-id, SSH host keys and a reseeded RNG. A snapshot that no
longer matches (image, kernel, agent or shape changed) falls back to a cold
boot with a notice; --cold always boots.`,
		Example: `  banger vm create
  banger vm create --name demo --image agents --vcpus 4 --memory 4GiB --disk 20GiB
  banger vm create --image agents --cold
  banger vm create --json | jq -c 'select(.type=="stage_finished") | [.stage, .duration_ms]'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			req, err := cf.request()
			if err != nil {
				return err
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			v, err := createVM(c.Context(), app, cl, req, asJSON)
			if err != nil || asJSON {
				return err
			}
			return printNextSteps(c.Context(), app, cl, v, false)
		},
	}
	cf.bind(c.Flags())
	c.Flags().BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

// printNextSteps tells the user how to get into a fresh VM: ssh, exec,
// sessions, and the services the image serves (e.g. opencode's URL).
func printNextSteps(ctx context.Context, app *App, cl *client.Client, v api.VM, workspace bool) error {
	w := app.Stdout
	fmt.Fprintf(w, "vm %s is running at %s (%s", v.Name, v.IP, v.Hypervisor)
	if v.Accel != "" {
		fmt.Fprintf(w, ", %s", v.Accel)
	}
	fmt.Fprintln(w, ")")
	for _, warn := range v.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	if img, err := cl.Image(ctx, v.Image); err == nil {
		for _, p := range img.Probes {
			if url, ok := publishedURL(v, p.Port); ok { // through the agent: works whatever the network
				fmt.Fprintf(w, "  %s: %s\n", p.Name, url)
				continue
			}
			fmt.Fprintf(w, "  %s: http://%s:%d\n", p.Name, v.IP, p.Port)
		}
	}
	dir := ""
	if workspace {
		dir = " -w /root/repo"
	}
	steps := [][2]string{
		{"banger vm ssh " + v.Name, "a shell in the VM"},
		{"banger vm exec " + v.Name + dir + " -- git status", "one command, with its exit code"},
		{"banger vm session start " + v.Name + " --name work -- CMD", "a long-lived command"},
		{"banger vm session attach " + v.Name + " work", "join its stdio (Ctrl-C detaches)"},
	}
	if workspace {
		steps = append(steps,
			[2]string{"banger vm diff " + v.Name, "what changed in /root/repo since it was sent"},
			[2]string{"banger vm pull " + v.Name, "bring that work home as branch banger/" + v.Name})
	} else {
		steps = append(steps, [2]string{"banger vm workspace prepare " + v.Name + " .", "copy a checkout to /root/repo"})
	}
	steps = append(steps,
		[2]string{"banger vm logs " + v.Name + " -f", "serial console"},
		[2]string{"banger vm delete " + v.Name, "remove it"})
	width := 0
	for _, s := range steps {
		width = max(width, len(s[0]))
	}
	fmt.Fprintf(w, "\nnext:\n")
	for _, s := range steps {
		fmt.Fprintf(w, "  %-*s  # %s\n", width, s[0], s[1])
	}
	return nil
}
