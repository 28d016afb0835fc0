// Package crashpoint kills bangerd at a named point of an operation, so
// tests can prove that a crash anywhere loses no data and leaks nothing
// after the next daemon start.
//
// A point is "KIND/STAGE/WHEN": the operation's kind (vm.create,
// vm.start, vm.stop, vm.delete, image.register, ...), its stage as
// `banger` shows it ("upper disk", "launch qemu", ...) and when in the
// stage: start (just after the stage began), middle, middle-2, ... (Here,
// where the code marks points inside a stage, in the order it passes
// them) or end (just before the next stage begins
// or the operation ends).
//
// Only a bangerd built with the crashpoints build tag (go build -tags
// crashpoints) has working points; in every other build Hit and Here do
// nothing and cost a call. There, BANGER_CRASH_AT=KIND/STAGE/WHEN makes
// the daemon SIGKILL itself when it reaches that point, and
// BANGER_CRASH_LIST=FILE appends every point it passes to FILE, which is
// how a test learns the points of an operation.
package crashpoint

import (
	"context"
	"strconv"
	"sync"
)

// When in a stage a point is.
const (
	Start  = "start"
	Middle = "middle"
	End    = "end"
)

// Environment variables a crashpoints build reads.
const (
	AtEnv   = "BANGER_CRASH_AT"
	ListEnv = "BANGER_CRASH_LIST"
)

// KilledPrefix starts the line a crashpoints build adds to ListEnv's file
// just before it kills the daemon at the armed point.
const KilledPrefix = "killed "

// Tracker follows one operation's current stage, for Here.
type Tracker struct {
	kind  string
	mu    sync.Mutex
	stage string
	mids  int // Here calls in this stage
}

type key struct{}

// Track returns ctx carrying a Tracker for an operation of kind, whose
// stages the caller reports with Stage.
func Track(ctx context.Context, kind string) (context.Context, *Tracker) {
	t := &Tracker{kind: kind}
	return context.WithValue(ctx, key{}, t), t
}

// Stage ends the current stage (its end point) and begins stage (its
// start point). A nil Tracker does nothing.
func (t *Tracker) Stage(stage string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	prev := t.stage
	t.stage, t.mids = stage, 0
	t.mu.Unlock()
	if prev != "" {
		Hit(t.kind, prev, End)
	}
	Hit(t.kind, stage, Start)
}

// Done ends the last stage (its end point) once the operation's work is
// done, before its result is recorded. A nil Tracker does nothing.
func (t *Tracker) Done() {
	if t == nil {
		return
	}
	t.mu.Lock()
	prev := t.stage
	t.stage = ""
	t.mu.Unlock()
	if prev != "" {
		Hit(t.kind, prev, End)
	}
}

// Here is a middle point of the current stage of ctx's operation: code
// marks with it the places inside a stage where a crash leaves the most
// half-done (a disk cloned but not recorded, a hypervisor launched but not
// its handle). Without a tracked operation it does nothing.
func Here(ctx context.Context) {
	if !enabled {
		return
	}
	t, ok := ctx.Value(key{}).(*Tracker)
	if !ok {
		return
	}
	t.mu.Lock()
	stage := t.stage
	t.mids++
	n := t.mids
	t.mu.Unlock()
	if stage == "" {
		return
	}
	when := Middle
	if n > 1 {
		when = Middle + "-" + strconv.Itoa(n)
	}
	Hit(t.kind, stage, when)
}
