package cli

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// TestCommandsCanceledCreate: a create whose guest never answers is
// canceled with `banger operation cancel`; vm create then fails saying who
// canceled it at which stage (not "context canceled"), the operation
// commands print it canceled with the stage it stopped at, and the
// half-made VM is gone.
func TestCommandsCanceledCreate(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	h.d.Fake.HealthErr = errors.New("still booting (test)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	created := make(chan cmdResult, 1)
	go func() { created <- h.run(ctx, "vm", "create", "--name", "stuck") }()
	id := waitForStage(t, h, created, "stuck", "agent health")

	h.runCases(t, []cmdCase{{golden: "operation-cancel", args: []string{"operation", "cancel", id}}})
	var r cmdResult
	select {
	case r = <-created:
	case <-ctx.Done():
		t.Fatal("vm create did not end within a minute of its cancel")
	}
	if r.code == ExitOK {
		t.Errorf("a canceled vm create exited 0")
	}
	// Which stages vm create saw start is a race with the fast fake:
	// keep its ending, from the canceled stage on.
	_, end, ok := strings.Cut(r.stderr, "  ⊘ agent health")
	if !ok {
		t.Fatalf("vm create's stderr does not show the canceled stage:\n%s", r.stderr)
	}
	r.stderr = "  ⊘ agent health" + end
	compareGolden(t, filepath.Join("commands", "vm-create-canceled.golden"), h.golden([]string{"vm", "create", "--name", "stuck"}, r))

	h.runCases(t, []cmdCase{
		{golden: "operation-list-canceled", args: []string{"operation", "list"}},
		{golden: "operation-show-canceled", args: []string{"operation", "show", id}},
		{golden: "operation-watch-canceled", args: []string{"operation", "watch", id}, code: ExitError, stderrLines: 9},
		{golden: "vm-list-after-cancel", args: []string{"vm", "list"}},
		{golden: "verify-after-cancel", args: []string{"verify"}},
	})
}

// waitForStage returns the id of the create of name once it runs stage.
// A create that ends before is a failure.
func waitForStage(t *testing.T, h *cliHarness, created chan cmdResult, name, stage string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case r := <-created:
			t.Fatalf("vm create %s ended (exit %d) before stage %q:\n%s%s", name, r.code, stage, r.stdout, r.stderr)
		default:
		}
		ops, err := h.d.Client.Operations(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Target == name && op.State == api.OperationRunning && op.CurrentStage == stage {
				return op.ID
			}
		}
	}
	t.Fatalf("the create of %s did not reach stage %q within a minute", name, stage)
	return ""
}
