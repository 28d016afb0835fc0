package guest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/google/go-cmp/cmp"
)

// ExecWait runs a command to its end against banger-agent's real handler:
// both streams apart, the exit status, a signal, and output past the limit
// dropped (while the command still finishes) with the result saying so.
func TestExecWait(t *testing.T) {
	s, _, _ := setup(t)
	over := api.ExecOutputLimit + 4096
	tests := []struct {
		name string
		req  api.ExecRequest
		want api.ExecResult
	}{
		{"exit code and both streams", api.ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}},
			api.ExecResult{Stdout: "out\n", Stderr: "err\n", ExitCode: 3}},
		{"no input: stdin is at its end", api.ExecRequest{Argv: []string{"sh", "-c", "cat; echo done"}},
			api.ExecResult{Stdout: "done\n"}},
		{"a signal", api.ExecRequest{Argv: []string{"sh", "-c", "kill -KILL $$"}},
			api.ExecResult{ExitCode: -1, Signal: "SIGKILL"}},
		{"stdout past the limit", api.ExecRequest{Argv: []string{"sh", "-c", "head -c " + strconv.Itoa(over) + " /dev/zero | tr '\\0' x; echo fin >&2"}},
			api.ExecResult{Stdout: strings.Repeat("x", api.ExecOutputLimit), Stderr: "fin\n", StdoutTruncated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ExecWait(context.Background(), "g", tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%.2000s", diff)
			}
		})
	}
	_, err := s.ExecWait(context.Background(), "g", api.ExecRequest{Argv: []string{"sh"}, TTY: true})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Field != "tty" {
		t.Errorf("tty with wait: %v, want a field error on tty", err)
	}
}
