package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
)

func newOperationCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:     "operation",
		Aliases: []string{"op"},
		Short:   "Follow long-running daemon operations",
		Long: `Long operations (VM create, image bootstrap, deep doctor runs) run in the
daemon and report named stages with their durations. Commands that begin one
follow it live; these commands list, inspect, re-attach to and cancel them.`,
		Example: "  banger operation list\n  banger operation watch op-1a2b3c4d5e6f7a8b\n  banger op show op-1a2b3c4d5e6f7a8b --json",
	}
	c.AddCommand(newOperationListCmd(app), newOperationShowCmd(app), newOperationWatchCmd(app), newOperationCancelCmd(app))
	return c
}

func newOperationListCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List recent operations, newest first",
		Example: "  banger operation list\n  banger operation list --json",
		Args:    noArgs,
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			ops, err := cl.Operations(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, api.OperationList{Operations: ops})
			}
			now := time.Now()
			t := newTable(app.Stdout, "ID", "KIND", "TARGET", "STATE", "STAGE", "STARTED", "TOOK")
			for _, op := range ops {
				took := "-"
				if !op.FinishedAt.IsZero() {
					took = fmtDuration(op.FinishedAt.Sub(op.CreatedAt))
				}
				t.row(op.ID, op.Kind, dash(op.Target), string(op.State), dash(listedStage(op)), fmtAge(now, op.CreatedAt), took)
			}
			return t.flush()
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// listedStage is the STAGE column: the running stage, or the one a
// canceled operation stopped at.
func listedStage(op api.Operation) string {
	if op.State == api.OperationCanceled {
		for _, st := range op.Stages {
			if st.Detail == api.StageCanceled {
				return st.Name
			}
		}
	}
	return op.CurrentStage
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newOperationShowCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one operation with its stages and result",
		Example: "  banger operation show op-1a2b3c4d5e6f7a8b",
		Args:    exactArgs(1, "an operation id"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			op, err := cl.Operation(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(app.Stdout, op)
			}
			fmt.Fprintf(app.Stdout, "%s  %s %s  %s\n", op.ID, op.Kind, op.Target, op.State)
			t := newTable(app.Stdout, "STAGE", "TOOK", "DETAIL")
			for _, st := range op.Stages {
				took := "running"
				if !st.FinishedAt.IsZero() {
					took = fmtDuration(st.Duration.D())
				}
				t.row(st.Name, took, termsafe.Line(st.Detail)) // details quote the guest (kernel, errors)
			}
			t.flush()
			switch {
			case op.State == api.OperationCanceled && op.Error != nil:
				fmt.Fprintf(app.Stdout, "canceled: %s\n", termsafe.Text(op.Error.Message))
			case op.Error != nil:
				fmt.Fprintf(app.Stdout, "error (%s): %s\n", op.Error.Code, termsafe.Text(op.Error.Message))
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newOperationWatchCmd(app *App) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow an operation's stages live until it ends",
		Long: `Print the operation's finished stages, then each new stage as it happens,
until the operation ends. Ctrl-C stops watching; the operation keeps running.
--json prints the event stream (one JSON object per line).`,
		Example: "  banger operation watch op-1a2b3c4d5e6f7a8b\n  banger operation watch op-1a2b3c4d5e6f7a8b --json",
		Args:    exactArgs(1, "an operation id"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			_, err := followOperation(ctx, app, cl, api.Operation{ID: args[0]}, asJSON)
			return err
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print events as JSON lines")
	return c
}

func newOperationCancelCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Ask a running operation to stop",
		Long: `Ask a running operation to stop. It ends canceled (not failed), its error
saying who canceled it and at which stage ("vm create canceled by banger
operation cancel (uid 1000) at stage launch"); what it had made is cleaned
up as after a failure (a canceled create removes its half-made VM).`,
		Example: "  banger operation cancel op-1a2b3c4d5e6f7a8b",
		Args:    exactArgs(1, "an operation id"),
		RunE: withClient(app, func(ctx context.Context, cl *client.Client, args []string) error {
			if err := cl.CancelOperation(ctx, args[0], "banger operation cancel"); err != nil {
				return err
			}
			_, err := fmt.Fprintf(app.Stdout, "cancel requested for %s\n", args[0])
			return err
		}),
	}
}

// followResult says which operation began, follows it live and decodes
// its result into out. printed is false with --json, where the event
// stream is the whole output.
func followResult(ctx context.Context, app *App, cl *client.Client, op api.Operation, asJSON bool, out any) (printed bool, err error) {
	if !asJSON {
		fmt.Fprintf(app.Stderr, "%s: operation %s\n", op.Kind, op.ID)
	}
	final, err := followOperation(ctx, app, cl, op, asJSON)
	if err != nil || asJSON {
		return false, err
	}
	return true, decodeResult(final, out)
}
