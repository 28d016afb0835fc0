package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/termsafe"
)

// This file builds Runtime.LastExit, the report of why a VM stopped when
// nobody asked it to: Watch (its hypervisor ended while the daemon ran),
// Reconcile (found dead at daemon start) and a failed start set it; the
// next start clears it with the rest of the runtime.

const (
	// consoleTailBytes is how much of the end of the console log is read
	// for a report.
	consoleTailBytes = 16 << 10
	// consoleLineMax bounds each console line in a report.
	consoleLineMax = 200
	// reasonMax bounds a report's reason.
	reasonMax = 600
)

// Guest messages the kernel prints last (at emergency level, so whatever
// the loglevel) when it powers off, reboots or panics; a hypervisor that
// exits with status 0 did so because of one of them.
var guestEnds = []struct{ marker, reason string }{
	{"Kernel panic", "the guest kernel panicked"},
	{"reboot: Restarting system", "the guest rebooted (a VM stops when its guest reboots)"},
	{"reboot: Power down", "the guest powered off"},
	{"reboot: System halted", "the guest halted"},
}

// exitReport is the report on a VM whose hypervisor h ended on its own;
// found says where that was noticed ("" while the daemon ran).
func (m *Manager) exitReport(ctx context.Context, h hypervisor.Handle, found string) *api.VMExit {
	lines := consoleLines(h.ConsoleLog)
	reason := hypervisorEnd(ctx, h, lines)
	if found != "" {
		reason += " (" + found + ")"
	}
	return m.report(reason, lines)
}

// failedStart records why a start that failed at stage with err failed
// (Runtime.LastExit, with the console of the hypervisor it had launched,
// if any) and returns the start's error, which first says how the
// hypervisor ended when it ended under the start.
func (m *Manager) failedStart(ctx context.Context, v *VM, stage string, err error) error {
	reason := fmt.Sprintf("start failed at %s: %s", stage, firstLine(err.Error()))
	h := v.Runtime.Handle
	if h == nil {
		v.Runtime.LastExit = m.report(reason, nil)
		return err
	}
	lines := consoleLines(h.ConsoleLog)
	end := ""
	if hv, ok := m.Drivers[h.Driver]; ok && !running(ctx, hv, *h) {
		end = hypervisorEnd(ctx, *h, lines)
		reason += "; " + end
	}
	v.Runtime.LastExit = m.report(reason, lines)
	if end != "" {
		return fmt.Errorf("%s during %s (see `banger vm show %s` for its console's last lines): %w", end, stage, v.Name, err)
	}
	return err
}

// errHypervisorGone ends a boot's waits when its hypervisor ends.
var errHypervisorGone = errors.New("the hypervisor exited")

// whileRunning returns ctx, ended (cause errHypervisorGone) as soon as
// h's process ends, so that a boot waiting for the guest (its root disk,
// readiness probes) fails at once rather than at the agent timeout. The
// returned stop ends the watch.
func (m *Manager) whileRunning(ctx context.Context, hv hypervisor.Hypervisor, h hypervisor.Handle) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(bootWatchInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if st, err := hv.Status(ctx, h); err == nil && st == hypervisor.Stopped {
				cancel(errHypervisorGone)
				return
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// bootWatchInterval is how often whileRunning asks.
const bootWatchInterval = time.Second

func (m *Manager) report(reason string, lines []string) *api.VMExit {
	reason = clip(termsafe.Line(reason), reasonMax)
	return &api.VMExit{At: m.now(), Reason: reason, ConsoleTail: strings.Join(lines, "\n")}
}

// hypervisorEnd says how h's process ended: what its parent saw when this
// daemon started it (hypervisor.ExitOf), else what the guest's console
// last said.
func hypervisorEnd(ctx context.Context, h hypervisor.Handle, console []string) string {
	guest := guestEnd(console)
	e, ok := hypervisor.ExitOf(ctx, h)
	switch {
	case !ok && guest != "":
		return guest
	case !ok:
		return fmt.Sprintf("the hypervisor (%s pid %d) exited; how is unknown (this daemon did not start it) and the console does not say", h.Driver, h.PID)
	case e.Signal != 0:
		return fmt.Sprintf("the hypervisor (%s) was killed by %s", h.Driver, e)
	case e.Code == 0 && strings.Contains(e.Stderr, "terminating on signal"):
		return fmt.Sprintf("the hypervisor (%s) was terminated: %s", h.Driver, e.Stderr)
	case e.Code == 0 && guest != "":
		return guest
	case e.Code == 0:
		return fmt.Sprintf("the hypervisor (%s) exited with status 0 (the guest powered off or rebooted)", h.Driver)
	case e.Stderr != "":
		return fmt.Sprintf("the hypervisor (%s) exited with %s: %s", h.Driver, e, e.Stderr)
	default:
		return fmt.Sprintf("the hypervisor (%s) exited with %s", h.Driver, e)
	}
}

// guestEnd is what the console's last lines say the guest did, or "".
func guestEnd(lines []string) string {
	for i := len(lines) - 1; i >= 0 && i >= len(lines)-5; i-- {
		for _, g := range guestEnds {
			if strings.Contains(lines[i], g.marker) {
				return g.reason
			}
		}
	}
	return ""
}

// consoleLines is the console log's last api.ConsoleTailLines non-empty
// lines, without colours, each escaped (termsafe) and bounded; nil when
// there is none.
func consoleLines(path string) []string {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	partial := false
	if fi, err := f.Stat(); err == nil && fi.Size() > consoleTailBytes {
		f.Seek(fi.Size()-consoleTailBytes, io.SeekStart)
		partial = true
	}
	b, _ := io.ReadAll(io.LimitReader(f, consoleTailBytes))
	if partial {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:] // the first line is cut
		}
	}
	// As vm logs shows a console: colours dropped, the rest escaped.
	var clean bytes.Buffer
	w := termsafe.NewWriter(&clean)
	w.Write(b)
	w.Close()
	var lines []string
	for _, l := range strings.Split(clean.String(), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		l = clip(termsafe.Line(l), consoleLineMax)
		lines = append(lines, l)
	}
	if len(lines) > api.ConsoleTailLines {
		lines = lines[len(lines)-api.ConsoleTailLines:]
	}
	return lines
}

// clip bounds s to about n bytes, cutting at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	for _, suffix := range []string{"; console tail:", "; last console lines:", "last console lines:"} {
		s = strings.TrimSuffix(s, suffix)
	}
	return strings.TrimSpace(s)
}

// stageRecorder passes a start's progress on and remembers its stage, so
// that a failed start's report says where it failed.
type stageRecorder struct {
	Progress
	stage string
}

func (s *stageRecorder) Stage(name string) {
	s.stage = name
	s.Progress.Stage(name)
}
