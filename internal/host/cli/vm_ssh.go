package cli

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"
)

func newVMSSHCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "ssh NAME [-- COMMAND...]",
		Short: "SSH into a VM as root, with its host key pinned",
		Long: `Run ssh to the VM as root with banger's key. The VM's SSH host keys were
read from the guest agent when it booted and written to the VM's own
known_hosts, so there is no trust-on-first-use prompt and a changed key is
refused. Arguments after -- are the remote command.`,
		Example: "  banger vm ssh demo\n  banger vm ssh demo -- uname -a\n  banger vm ssh demo -- 'cd /root/repo && git status'",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageError("vm ssh wants a vm name (see `banger vm ssh --help`)")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			info, err := cl.SSHInfo(c.Context(), args[0])
			cl.Close()
			if err != nil {
				return err
			}
			bin, err := exec.LookPath("ssh")
			if err != nil {
				return errors.New("ssh is not installed: apt-get install openssh-client")
			}
			argv := []string{"ssh",
				"-i", info.KeyFile,
				"-o", "IdentitiesOnly=yes",
				"-o", "UserKnownHostsFile=" + info.KnownHosts,
				"-o", "StrictHostKeyChecking=yes",
				"-o", "GlobalKnownHostsFile=/dev/null",
				"-o", "LogLevel=ERROR",
				"-o", "ConnectTimeout=10",
			}
			if len(args) == 1 {
				argv = append(argv, "-t")
			}
			argv = append(argv, info.User+"@"+info.Host)
			argv = append(argv, args[1:]...)
			return syscall.Exec(bin, argv, os.Environ())
		},
	}
	return c
}
