// Command bangerd is banger's daemon. See internal/host/daemon.
package main

import (
	"os"

	"github.com/bangerdev/banger/internal/host/buildsandbox"
	"github.com/bangerdev/banger/internal/host/daemon"
)

func main() {
	// Image builds run each command through this binary as the sandbox's
	// init (see internal/host/buildsandbox).
	if buildsandbox.IsInit() {
		os.Exit(buildsandbox.Init())
	}
	os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
}
