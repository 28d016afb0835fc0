package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/spf13/cobra"
)

func newVMRunCmd(app *App) *cobra.Command {
	var (
		cf        createFlags
		mode      string
		noPublish bool
	)
	c := &cobra.Command{
		Use:   "run [PATH] [--mode git|full_copy] [create flags]",
		Short: "Create a VM with a checkout at /root/repo and print how to get in",
		Long: `Create a VM (as vm create does, with the same flags), copy the checkout at
PATH (default: the current directory) to /root/repo (as vm workspace
prepare does) and print the next steps: ssh, exec, session start and
attach, and the URLs of the services the image serves (opencode on the
agents image), which it publishes on the host's 127.0.0.1 (see vm port;
--no-publish leaves them on the bridge address only). It never attaches
by itself.

The checkout is checked before anything is created: a path that is not a
git work tree in git mode, or one with submodules, is refused up front.
If the copy fails after the VM booted, the VM is left running and the
error says how to retry or remove it.`,
		Example: `  banger vm run
  banger vm run ~/src/project --name proj --image agents --memory 4GiB
  banger vm run . --mode full_copy
  banger vm run . --egress @agents --no-publish`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError("vm run takes at most one path (the checkout): banger vm run [PATH]")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			m, path, err := checkoutArgs(mode, args, 0)
			if err != nil {
				return err
			}
			// Refuse a bad checkout before a VM, or a daemon, exists.
			if err := frontend.CheckCheckout(c.Context(), path, m); err != nil {
				return err
			}
			req, err := cf.request()
			if err != nil {
				return err
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			v, err := frontend.RunVM(c.Context(), cl, frontend.RunRequest{Create: req, Checkout: path, Mode: m, Checked: true}, frontend.Progress{
				OnOperation: createPrinter(app, false),
				OnWorkspace: func(v api.VM, res api.TransferResult, took time.Duration) {
					printWorkspace(app, v.Name, path, m, res, took)
				},
				Follow: frontend.FollowOptions{Reconnect: app.Client},
			})
			var we *frontend.WorkspaceError
			if errors.As(err, &we) {
				return fmt.Errorf("%w\nthe VM %s is running: retry with `banger vm workspace prepare %s %s`, or remove it with `banger vm delete %s`", we.Err, v.Name, v.Name, path, v.Name)
			}
			if err != nil {
				return err
			}
			if !noPublish {
				v = publishProbes(c.Context(), app, cl, v)
			}
			return printNextSteps(c.Context(), app, cl, v, true)
		},
	}
	cf.bind(c.Flags())
	c.Flags().StringVar(&mode, "mode", "git", "workspace mode: git or full_copy (see vm workspace prepare)")
	c.Flags().BoolVar(&noPublish, "no-publish", false, "do not publish the image's service ports on 127.0.0.1")
	return c
}
