package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/frontend"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// followOperation prints an operation's live stages until it ends and
// returns its final state (frontend.FollowOperationWith: through a daemon
// restart too, starting the daemon again to read how it ended). Progress
// goes to stderr; with asJSON every event goes to stdout as one JSON line
// instead.
func followOperation(ctx context.Context, app *App, cl *client.Client, op api.Operation, asJSON bool) (api.Operation, error) {
	return frontend.FollowOperationWith(ctx, cl, op.ID, eventPrinter(app, asJSON), frontend.FollowOptions{Reconnect: app.Client})
}

// eventPrinter renders operation events: as text on stderr, or as JSON
// lines on stdout.
func eventPrinter(app *App, asJSON bool) func(api.OperationEvent) {
	if asJSON {
		enc := json.NewEncoder(app.Stdout)
		return func(ev api.OperationEvent) { enc.Encode(ev) }
	}
	return func(ev api.OperationEvent) { printEvent(app.Stderr, ev) }
}

func printEvent(w io.Writer, ev api.OperationEvent) {
	switch ev.Type {
	case api.EventSnapshot:
		// Replay what finished before we attached, so a late watcher sees
		// the whole history.
		for _, st := range ev.Operation.Stages {
			if !st.FinishedAt.IsZero() {
				printStageDone(w, st.Name, st.Duration.D(), st.Detail)
			} else {
				fmt.Fprintf(w, "  … %s\n", st.Name)
			}
		}
	case api.EventStageStarted:
		fmt.Fprintf(w, "  … %s\n", ev.Stage)
	case api.EventStageFinished:
		printStageDone(w, ev.Stage, ev.Duration.D(), ev.Message)
	case api.EventLog:
		// Log lines and stage details may quote the guest (its kernel,
		// an agent's error): escaped.
		fmt.Fprintf(w, "      %s\n", termsafe.Text(ev.Message))
	case api.EventDone:
		op := ev.Operation
		total := op.FinishedAt.Sub(op.CreatedAt)
		switch op.State {
		case api.OperationSucceeded:
			fmt.Fprintf(w, "  done in %s\n", fmtDuration(total))
		case api.OperationCanceled:
			// Who canceled it and where is the error, printed last.
			fmt.Fprintf(w, "  canceled after %s\n", fmtDuration(total))
		default:
			fmt.Fprintf(w, "  failed after %s\n", fmtDuration(total))
		}
	}
}

func printStageDone(w io.Writer, name string, d time.Duration, detail string) {
	mark := "✓"
	switch {
	case frontend.StageFailed(detail):
		mark = "✗"
	case detail == api.StageCanceled:
		mark = "⊘"
	}
	line := fmt.Sprintf("  %s %-22s %8s", mark, name, fmtDuration(d))
	if detail != "" {
		line += "  " + termsafe.Line(detail)
	}
	fmt.Fprintln(w, line)
}

// decodeResult unpacks a finished operation's result.
func decodeResult(op api.Operation, v any) error { return frontend.DecodeResult(op, v) }
