// Command banger is the banger CLI. See internal/host/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bangerdev/banger/internal/host/cli"
	"github.com/bangerdev/banger/internal/host/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], &cli.App{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Env: config.Env(os.LookupEnv), UID: os.Getuid(),
	})
	stop()
	os.Exit(code)
}
