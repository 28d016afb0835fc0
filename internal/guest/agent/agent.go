// Package agent is banger-agent, the static binary baked into every banger
// image. It owns the binary's commands: the guest service that answers
// bangerd over vsock and virtio-serial (serve, speaking package
// agentproto), the guest NIC bootstrap (net-up, package guestnet), the
// initramfs /init (package guestinit) and the KVM boot probe, plus the
// systemd units an image builder installs to run it (SystemdUnits).
package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/shared/buildinfo"
)

// Main dispatches on argv. Started by the kernel as the initramfs' /init
// (PID 1), it is the init and takes no commands: the kernel hands init
// the command-line words it does not know, which Init passes on to the
// real init. `/init probe` (the words after "--" on the command line) runs
// the KVM probe.
func Main(argv []string, stdout, stderr io.Writer) int {
	if guestinit.IsInit(argv, os.Getpid()) {
		// Init only returns when it could neither boot nor power off.
		fmt.Fprintf(stderr, "banger-init: %v\n", guestinit.Init(stderr))
		return 1
	}
	if len(argv) < 2 {
		usage(stderr)
		return 2
	}
	args := argv[1:]
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "net-up":
		return cmdNetUp(args[1:], stdout, stderr)
	case "version", "--version":
		info := buildinfo.Get()
		if len(args) > 1 && args[1] == "--json" {
			json.NewEncoder(stdout).Encode(info)
			return 0
		}
		fmt.Fprintf(stdout, "banger-agent %s (build %s)\n", info.Version, info.BuildID)
		return 0
	case "probe":
		if err := guestinit.Probe(stdout); err != nil {
			fmt.Fprintf(stderr, "banger-agent probe: %v\n", err)
			return 1
		}
		return 0
	case "help", "--help", "-h":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q: run `%s --help`\n", filepath.Base(argv[0]), args[0], filepath.Base(argv[0]))
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `banger-agent runs inside banger guests. It is installed by banger's image
tooling; you do not run it by hand.

Usage:
  banger-agent serve              answer bangerd over vsock and virtio-serial (banger-agent.service)
  banger-agent net-up [--dry-run] configure the NIC from banger.ip= etc. on the kernel command line (banger-net.service)
  banger-agent version [--json]   print version and build id
  banger-agent probe              (as PID 1) print the boot-probe marker and power off

As the initramfs /init (PID 1) it loads the initramfs' modules, mounts root= and starts the real init.
`)
}
