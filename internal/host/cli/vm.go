package cli

import "github.com/spf13/cobra"

func newVMCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "vm",
		Short: "Create, run and reach microVMs",
		Long: `VMs boot from a managed image. Each gets a clone of the image's rootfs, its
own work disk mounted at /root (a clone of the image's work-seed, grown to
--disk), an address on banger's bridge, and the configured agent credentials
copied into /root at every start.`,
		Example: `  banger vm run ~/src/project --name demo
  banger vm create --name demo
  banger vm exec demo -- uname -a
  banger vm ssh demo
  banger vm list
  banger vm pause demo && banger vm resume demo
  banger vm fork demo demo-2
  banger vm diff demo && banger vm pull demo
  banger vm delete demo`,
	}
	c.AddCommand(
		newVMCreateCmd(app),
		newVMListCmd(app),
		newVMShowCmd(app),
		newVMStartCmd(app),
		newVMStopCmd(app),
		newVMRestartCmd(app),
		newVMPauseCmd(app),
		newVMResumeCmd(app),
		newVMForkCmd(app),
		newVMDeleteCmd(app),
		newVMLogsCmd(app),
		newVMSSHCmd(app),
		newVMExecCmd(app),
		newVMCpCmd(app),
		newVMWorkspaceCmd(app),
		newVMDiffCmd(app),
		newVMPullCmd(app),
		newVMEgressCmd(app),
		newVMPortCmd(app),
		newVMSessionCmd(app),
		newVMRunCmd(app),
		newVMStatsCmd(app),
	)
	return c
}
