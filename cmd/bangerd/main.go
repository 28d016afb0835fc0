// Command bangerd is banger's daemon. See internal/daemon.
package main

import (
	"os"

	"github.com/bangerdev/banger/internal/daemon"
)

func main() { os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr)) }
