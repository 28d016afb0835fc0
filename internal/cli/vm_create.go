package cli

import (
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/config"
	"github.com/spf13/cobra"
)

func newVMCreateCmd(app *App) *cobra.Command {
	var (
		req          api.CreateVMRequest
		memory, disk string
		asJSON       bool
	)
	c := &cobra.Command{
		Use:   "create [--name N] [--image I] [--vcpus N] [--memory SIZE] [--disk SIZE] [--hypervisor H]",
		Short: "Create and boot a VM, printing each stage live",
		Long: `Create a VM and boot it, as an operation with live stages: allocate name and
address → clone rootfs → clone and grow the work disk → sync auth files →
take a TAP from the pool → launch the hypervisor → wait for the guest agent →
wait for the image's readiness probes (e.g. opencode on 4096) → ready.
Without --image the newest ready image is used; without --name a friendly
one is generated. Sizes take binary units (512MiB, 2GiB).`,
		Example: `  banger vm create
  banger vm create --name demo --image agents --vcpus 4 --memory 4GiB --disk 20GiB
  banger vm create --json | jq -c 'select(.type=="stage_finished") | [.stage, .duration_ms]'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if memory != "" {
				n, err := config.ParseSize(memory)
				if err != nil {
					return usageError("--memory %q: %v", memory, err)
				}
				req.MemoryMiB = int(n >> 20)
				if n%(1<<20) != 0 || n <= 0 {
					return usageError("--memory %q: want a whole number of MiB, e.g. 2GiB", memory)
				}
			}
			if disk != "" {
				n, err := config.ParseSize(disk)
				if err != nil {
					return usageError("--disk %q: %v", disk, err)
				}
				req.DiskBytes = n
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			op, err := cl.BeginCreateVM(c.Context(), req)
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(app.Stderr, "vm create: operation %s\n", op.ID)
			}
			final, err := followOperation(c.Context(), app, cl, op, asJSON)
			if err != nil || asJSON {
				return err
			}
			var v api.VM
			if err := decodeResult(final, &v); err != nil {
				return err
			}
			return printNextSteps(app, v)
		},
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "VM name (default: generated, e.g. brisk-otter)")
	f.StringVar(&req.Image, "image", "", "image to boot (default: the newest ready image)")
	f.IntVar(&req.VCPUs, "vcpus", 0, "vCPUs (default from config: vm.vcpus)")
	f.StringVar(&memory, "memory", "", "memory, e.g. 2GiB (default from config: vm.memory)")
	f.StringVar(&disk, "disk", "", "work disk (/root) size, e.g. 16GiB (default from config: vm.disk)")
	f.StringVar(&req.Hypervisor, "hypervisor", "", "qemu or firecracker (default from config: hypervisor)")
	f.BoolVar(&asJSON, "json", false, "print operation events as JSON lines")
	return c
}

// printNextSteps tells the user how to get into a fresh VM.
func printNextSteps(app *App, v api.VM) error {
	w := app.Stdout
	fmt.Fprintf(w, "vm %s is running at %s (%s", v.Name, v.IP, v.Hypervisor)
	if v.Accel != "" {
		fmt.Fprintf(w, ", %s", v.Accel)
	}
	fmt.Fprintln(w, ")")
	for _, warn := range v.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	fmt.Fprintf(w, "\nnext:\n")
	fmt.Fprintf(w, "  banger vm ssh %s                 # a shell in the VM\n", v.Name)
	fmt.Fprintf(w, "  banger vm ssh %s -- uname -a     # one command\n", v.Name)
	fmt.Fprintf(w, "  banger vm logs %s -f             # serial console\n", v.Name)
	fmt.Fprintf(w, "  banger vm delete %s              # remove it\n", v.Name)
	return nil
}
