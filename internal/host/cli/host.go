package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"

	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/spf13/cobra"
	"github.com/vishvananda/netns"
)

func newHostCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "host",
		Short: "Prepare this host's network for an unprivileged bangerd (run once, as root)",
		Long: `A bangerd running as root sets up its bridge, NAT table and TAP pool itself.
An unprivileged bangerd cannot: run ` + "`sudo banger host setup`" + ` once to create
them, with the TAP devices owned by your user so QEMU can open them. These
commands change the host directly (they do not go through bangerd, which may
not have the privileges).`,
		Example: "  sudo banger host setup\n  sudo banger host setup --taps 8 --user alice\n  sudo banger host teardown",
	}
	c.AddCommand(newHostSetupCmd(app), newHostTeardownCmd(app))
	return c
}

// hostUser is who the TAP pool belongs to: --user, else the user sudo was
// run by, else the caller.
func (a *App) hostUser(name string) (*hostnet.Owner, string, error) {
	if name == "" {
		name, _ = a.Env("SUDO_USER")
	}
	if name == "" {
		return &hostnet.Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}, strconv.Itoa(os.Getuid()), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, "", fmt.Errorf("--user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &hostnet.Owner{UID: uint32(uid), GID: uint32(gid)}, u.Username, nil
}

func (a *App) hostExecutor() (*hostnet.Executor, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("this changes the host's network: run it as root (sudo banger host ...)")
	}
	return a.netExecutor()
}

// netExecutor returns an executor of the namespace the host commands act
// on: this process's own, or the test's (App.netNS).
func (a *App) netExecutor() (*hostnet.Executor, error) {
	ns := netns.None()
	if a.netNS != nil {
		ns = *a.netNS
	}
	return hostnet.NewExecutor(ns, slog.New(slog.DiscardHandler))
}

// hostSetup is `banger host setup`: the bridge, the nftables tables and a
// TAP pool owned by userName (empty: the user who ran sudo, else the
// caller), taps TAPs big (0: network.tap_pool_size). doctor --fix runs it
// too.
func (a *App) hostSetup(ctx context.Context, userName string, taps int) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	owner, who, err := a.hostUser(userName)
	if err != nil {
		return err
	}
	exec, err := a.hostExecutor()
	if err != nil {
		return err
	}
	defer exec.Close()
	// The owner of the TAPs is the user whose bangerd will run the
	// VMs: the only user besides root who may connect to guests.
	hc := hostnet.Config{Bridge: cfg.Network.Bridge, Subnet: cfg.Network.Subnet, PoolSize: cfg.Network.TAPPoolSize,
		Table: hostnet.DefaultTable, TAPOwner: owner,
		AllowCIDRs: cfg.Network.AllowCIDRs, DNS: hostnet.Resolvers(hostnet.ResolvConf)}
	if taps > 0 {
		hc.PoolSize = taps
	}
	if err := hostnet.Setup(ctx, hc, exec); err != nil {
		return err
	}
	if err := hostnet.NewPool(hc, exec, nil).Ensure(ctx, nil); err != nil {
		return err
	}
	// QEMU, as the user, opens /dev/net/tun to attach to its TAP.
	// Distributions ship it 0666 (attaching to a TAP needs its
	// ownership, not the device's); restore that where it is not.
	if fi, err := os.Stat("/dev/net/tun"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
		if err := os.Chmod("/dev/net/tun", 0o666); err != nil {
			return fmt.Errorf("making /dev/net/tun usable by %s: %w", who, err)
		}
		fmt.Fprintf(a.Stdout, "made /dev/net/tun mode 0666 (the usual default) so %s can attach to its TAPs\n", who)
	}
	_, err = fmt.Fprintf(a.Stdout, "bridge %s (%s), nftables table %s and %d TAP devices for %s are ready\n",
		hc.Bridge, hostnet.Gateway(hc.Subnet), hc.Table, hc.PoolSize, who)
	return err
}

func newHostSetupCmd(app *App) *cobra.Command {
	var (
		taps     int
		userName string
	)
	c := &cobra.Command{
		Use:   "setup [--taps N] [--user NAME]",
		Short: "Create the bridge, NAT table and a user-owned TAP pool",
		Long: `Create banger's bridge (network.bridge, with the gateway of network.subnet),
its nftables tables (guest egress NAT; guests isolated from each other, from
host services and from private, link-local and metadata addresses except
network.allow_cidrs and the host's resolvers; each TAP bound to one guest
address and MAC; only the user and root may connect to guests) and a pool of
persistent TAP devices owned by the user, attached to the bridge. Safe to run
again: it only changes what differs. Run it again after network.allow_cidrs
or the host's resolvers (/etc/resolv.conf) change.`,
		Example: "  sudo banger host setup\n  sudo banger host setup --taps 8 --user alice",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return app.hostSetup(c.Context(), userName, taps)
		},
	}
	c.Flags().IntVar(&taps, "taps", 0, "idle TAP devices to keep (default: network.tap_pool_size)")
	c.Flags().StringVar(&userName, "user", "", "owner of the TAP devices (default: the user who ran sudo)")
	return c
}

func newHostTeardownCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "teardown",
		Short:   "Remove banger's bridge, NAT table and TAP pool",
		Long:    "Remove everything `banger host setup` (or a root bangerd) created on the host network. Stop VMs first.",
		Example: "  sudo banger host teardown",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := app.Config()
			if err != nil {
				return err
			}
			exec, err := app.hostExecutor()
			if err != nil {
				return err
			}
			defer exec.Close()
			hc := hostnet.Config{Bridge: cfg.Network.Bridge, Subnet: cfg.Network.Subnet, PoolSize: cfg.Network.TAPPoolSize, Table: hostnet.DefaultTable}
			if err := hostnet.Teardown(c.Context(), hc, exec); err != nil {
				return err
			}
			_, err = fmt.Fprintf(app.Stdout, "removed bridge %s, table %s and the TAP pool\n", hc.Bridge, hc.Table)
			return err
		},
	}
}
