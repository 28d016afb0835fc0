// Command probeinit is a stand-in for banger-agent in tests: run as /init
// with the argument "probe" it runs guestinit.Probe.
package main

import (
	"fmt"
	"os"

	"github.com/bangerdev/banger/internal/guest/guestinit"
)

func main() {
	if !guestinit.IsProbe(os.Args) {
		fmt.Fprintf(os.Stderr, "probeinit: want the single argument %q, got %q\n", guestinit.ProbeArg, os.Args[1:])
		os.Exit(2)
	}
	if err := guestinit.Probe(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
