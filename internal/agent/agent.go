// Package agent is banger-agent, the static binary baked into every banger
// image. It is the guest side of the host↔guest channel, and it doubles as
// the initramfs /init (see package guestinit). For now it reports its
// version and runs the KVM boot probe's init; the protocol lands with the
// guest-agent capability.
package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/bangerdev/banger/internal/buildinfo"
	"github.com/bangerdev/banger/internal/guestinit"
)

// Main dispatches on argv. As an initramfs /init the kernel passes the
// words after "--" on its command line, so `/init probe` runs the probe.
func Main(argv []string, stdout, stderr io.Writer) int {
	args := argv[1:]
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
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
  banger-agent version [--json]   print version and build id
  banger-agent probe              (as PID 1) print the boot-probe marker and power off
`)
}
