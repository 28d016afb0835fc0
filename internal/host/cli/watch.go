package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// followOperation prints an operation's live stages until it ends and
// returns its final state. Progress goes to stderr; with asJSON every event
// goes to stdout as one JSON line instead.
func followOperation(ctx context.Context, app *App, cl *client.Client, op api.Operation, asJSON bool) (api.Operation, error) {
	var enc *json.Encoder
	if asJSON {
		enc = json.NewEncoder(app.Stdout)
	}
	final, err := cl.WatchOperation(ctx, op.ID, func(ev api.OperationEvent) error {
		if enc != nil {
			return enc.Encode(ev)
		}
		printEvent(app.Stderr, ev)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return final, fmt.Errorf("stopped following operation %s; it keeps running: `banger operation watch %s`", op.ID, op.ID)
		}
		return final, err
	}
	if final.State == api.OperationFailed && final.Error != nil {
		return final, final.Error
	}
	return final, nil
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
		if op.State == api.OperationSucceeded {
			fmt.Fprintf(w, "  done in %s\n", fmtDuration(total))
		} else {
			fmt.Fprintf(w, "  failed after %s\n", fmtDuration(total))
		}
	}
}

func printStageDone(w io.Writer, name string, d time.Duration, detail string) {
	mark := "✓"
	if detail == "failed" || detail == "interrupted" {
		mark = "✗"
	}
	line := fmt.Sprintf("  %s %-22s %8s", mark, name, fmtDuration(d))
	if detail != "" {
		line += "  " + termsafe.Line(detail)
	}
	fmt.Fprintln(w, line)
}

// decodeResult unpacks a finished operation's result.
func decodeResult(op api.Operation, v any) error {
	if len(op.Result) == 0 {
		return fmt.Errorf("operation %s finished without a result", op.ID)
	}
	if err := json.Unmarshal(op.Result, v); err != nil {
		return fmt.Errorf("decoding the result of operation %s: %w", op.ID, err)
	}
	return nil
}
