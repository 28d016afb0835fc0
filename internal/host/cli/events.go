package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
)

func newEventsCmd(app *App) *cobra.Command {
	var (
		asJSON bool
		since  uint64
		epoch  string
	)
	c := &cobra.Command{
		Use:   "events",
		Short: "Follow what changes in the daemon: VMs, images, operations, sessions",
		Long: `Print the daemon's change feed as it happens, one line per change: a VM
created, started, stopped or deleted; an image registered, built, promoted or
removed; an operation's begin, stages and end; a session started, exited or
removed. It follows until Ctrl-C, across daemon restarts (notices go to
stderr).

Each line shows the time, the change's sequence number (#SEQ), what changed
and its new state. --json prints each change as the API sends it (one JSON
object per line); after a break in which changes were missed it prints a
{"kind":"reset"} line, after which a script should list again what it keeps.

--since SEQ --epoch EPOCH resume after change SEQ of the daemon run EPOCH (the
"epoch" of --json lines, or the one printed at start): the changes since then
come first, or a reset when the daemon no longer has them.`,
		Example: `  banger events
  banger events --json | jq -c 'select(.kind == "vm")'
  banger events --since 120 --epoch 3f9c2a7d1b0e4c55`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("epoch") && !c.Flags().Changed("since") {
				return usageError("--epoch needs --since: give the seq of the last change seen (see `banger events --help`)")
			}
			p := feedPrinter{out: app.Stdout, diag: app.Stderr, json: asJSON, resumed: c.Flags().Changed("since"), loc: time.Local}
			err := frontend.FollowFrom(c.Context(), since, epoch, app.Client, p.print)
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C
			}
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print each change as JSON, one object per line")
	c.Flags().Uint64Var(&since, "since", 0, "resume after this change's seq (with --epoch)")
	c.Flags().StringVar(&epoch, "epoch", "", "the daemon run --since belongs to")
	return c
}

// feedPrinter renders the feed: changes to out, connection notices to
// diag.
type feedPrinter struct {
	out, diag io.Writer
	json      bool
	resumed   bool // --since was given
	loc       *time.Location
}

func (p feedPrinter) print(it frontend.FeedItem) {
	switch it := it.(type) {
	case api.Event:
		if p.json {
			b, _ := json.Marshal(it)
			fmt.Fprintf(p.out, "%s\n", b)
			return
		}
		fmt.Fprintln(p.out, feedLine(it, p.loc))
	case frontend.Disconnected:
		fmt.Fprintf(p.diag, "banger: lost bangerd (%s); reconnecting…\n", termsafe.Line(fmt.Sprint(it.Err)))
	case frontend.Reconnected:
		missed := it.Reset && (!it.First || p.resumed)
		switch {
		case it.First && !missed:
			fmt.Fprintf(p.diag, "following bangerd's changes (epoch %s, after #%d); Ctrl-C stops\n", it.Epoch, it.Seq)
		case missed:
			fmt.Fprintf(p.diag, "connected to bangerd (epoch %s, after #%d); changes were missed (it restarted, or no longer keeps them): list again to catch up\n", it.Epoch, it.Seq)
		default:
			fmt.Fprintf(p.diag, "reconnected to bangerd; nothing was missed\n")
		}
		if missed && p.json {
			b, _ := json.Marshal(api.Event{Kind: api.EventReset, Epoch: it.Epoch, Seq: it.Seq})
			fmt.Fprintf(p.out, "%s\n", b)
		}
	}
}

// feedLine is one change in human form: time, seq, kind, what, state.
// Names and messages may come from a guest: they are escaped.
func feedLine(ev api.Event, loc *time.Location) string {
	name, detail := termsafe.Line(ev.Name), "removed"
	switch {
	case ev.Removed && ev.Kind == api.EventSession:
		name = termsafe.Line(ev.VM) + "/" + termsafe.Line(orID(ev.Name, ev.ID))
	case ev.Removed:
	case ev.VMState != nil:
		detail = ev.VMState.State
		if ev.VMState.IP != "" && ev.VMState.State == api.VMRunning {
			detail += " " + ev.VMState.IP
		}
	case ev.ImageState != nil:
		detail = ev.ImageState.State
	case ev.OperationState != nil:
		name, detail = ev.ID, feedOperation(*ev.OperationState)
	case ev.SessionState != nil:
		s := ev.SessionState
		name, detail = termsafe.Line(ev.VM)+"/"+termsafe.Line(orID(s.Name, s.ID)), s.State
		switch {
		case s.ExitCode != nil:
			detail += fmt.Sprintf(" (exit %d)", *s.ExitCode)
		case s.Signal != "":
			detail += " (" + termsafe.Line(s.Signal) + ")"
		}
	default:
		detail = "changed"
	}
	return fmt.Sprintf("%s  #%-5d %-9s %-24s %s", ev.Time.In(loc).Format("15:04:05.000"), ev.Seq, ev.Kind, name, detail)
}

func orID(name, id string) string {
	if name == "" {
		return id
	}
	return name
}

// feedOperation is "KIND TARGET: STATE", with the stage while running,
// the duration once done, and the error when it failed.
func feedOperation(op api.Operation) string {
	s := op.Kind
	if op.Target != "" {
		s += " " + termsafe.Line(op.Target)
	}
	s += ": " + string(op.State)
	switch {
	case op.State == api.OperationRunning && op.CurrentStage != "":
		s += ", " + termsafe.Line(op.CurrentStage)
	case op.Error != nil:
		s += ": " + termsafe.Line(op.Error.Message)
	case !op.FinishedAt.IsZero():
		s += " in " + fmtDuration(op.FinishedAt.Sub(op.CreatedAt))
	}
	return s
}
