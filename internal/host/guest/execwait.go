package guest

import (
	"context"
	"fmt"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// ExecWait runs a command to its end with no input and returns what it
// wrote and how it ended. The guest's output is bounded: past
// api.ExecOutputLimit per stream it is read and dropped (the command is
// not blocked, so it can finish) and the result says so. It ends early
// only when ctx does (the caller went away).
func (s *Service) ExecWait(ctx context.Context, vmName string, req api.ExecRequest) (api.ExecResult, error) {
	if req.TTY {
		return api.ExecResult{}, api.FieldErrorf("tty", "false",
			"tty cannot be used when waiting for the result: a terminal needs the exec stream")
	}
	st, err := s.Exec(ctx, vmName, req)
	if err != nil {
		return api.ExecResult{}, err
	}
	defer st.Close()
	var out, errb capped
	out.max, errb.max = api.ExecOutputLimit, api.ExecOutputLimit
	es, err := agentmux.RunExec(ctx, st, agentmux.ExecRequest{Argv: req.Argv}, nil, &out, &errb)
	if err != nil {
		return api.ExecResult{}, s.ended(ctx, vmName, req.Argv[0], apiError(fmt.Errorf("exec %s in %s: %w", req.Argv[0], vmName, err)))
	}
	return api.ExecResult{
		Stdout: string(out.buf), Stderr: string(errb.buf),
		ExitCode: es.Code, Signal: es.SignalName,
		StdoutTruncated: out.dropped > 0, StderrTruncated: errb.dropped > 0,
	}, nil
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	buf     []byte
	max     int
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	keep := min(len(p), c.max-len(c.buf))
	c.buf = append(c.buf, p[:keep]...)
	c.dropped += int64(len(p) - keep)
	return len(p), nil
}
