package agent

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bangerdev/banger/internal/guest/guestnet"
)

// cmdNetUp is `banger-agent net-up`: configure the guest NIC from the
// kernel command line (see package guestnet).
func cmdNetUp(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("net-up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline := fs.String("cmdline", "/proc/cmdline", "read the kernel command line from this file")
	dryRun := fs.Bool("dry-run", false, "print what the command line asks for and change nothing")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: banger-agent net-up [--dry-run] [--cmdline FILE]\n\nConfigure the guest network from banger.ip=, banger.gw=, banger.dns=, banger.hostname=\nand banger.mac= on the kernel command line (systemd runs this as banger-net.service).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	b, err := os.ReadFile(*cmdline)
	if err != nil {
		fmt.Fprintf(stderr, "banger-agent net-up: reading the kernel command line: %v\n", err)
		return 1
	}
	cfg, err := guestnet.ParseCmdline(string(b))
	if err != nil {
		fmt.Fprintf(stderr, "banger-agent net-up: %v; fix the VM's kernel command line\n", err)
		return 1
	}
	if cfg.IsZero() {
		log.Info("no banger.ip=, banger.dns= or banger.hostname= on the kernel command line; leaving the network alone")
		return 0
	}
	if *dryRun {
		fmt.Fprintf(stdout, "address=%v gateway=%v dns=%v hostname=%q mac=%v\n", cfg.Address, cfg.Gateway, cfg.DNS, cfg.Hostname, cfg.MAC)
		return 0
	}
	// Only rtnetlink: guest kernels may lack xfrm or netfilter netlink, which
	// a handle for every family would need.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		fmt.Fprintf(stderr, "banger-agent net-up: opening netlink: %v\n", err)
		return 1
	}
	defer h.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys := guestnet.System{
		Netlink:     h,
		EtcDir:      "/etc",
		SetHostname: func(name string) error { return unix.Sethostname([]byte(name)) },
		LinkWait:    10 * time.Second,
		Log:         log,
	}
	if err := guestnet.Apply(ctx, cfg, sys); err != nil {
		fmt.Fprintf(stderr, "banger-agent net-up: %v\n", err)
		return 1
	}
	return 0
}
