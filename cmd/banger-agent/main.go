// Command banger-agent is the guest agent baked into every banger image.
// See internal/guest/agent.
package main

import (
	"os"

	"github.com/bangerdev/banger/internal/guest/agent"
)

func main() { os.Exit(agent.Main(os.Args, os.Stdout, os.Stderr)) }
