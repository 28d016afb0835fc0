//go:build crashpoints

package crashpoint

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// enabled: this is a crashpoints build (go build -tags crashpoints).
const enabled = true

var (
	listMu sync.Mutex
	armed  = os.Getenv(AtEnv)
	list   = os.Getenv(ListEnv)
)

// Hit kills the daemon with SIGKILL when kind/stage/when is the point
// BANGER_CRASH_AT names, and records the point in BANGER_CRASH_LIST's
// file when that is set (and, before a kill, KilledPrefix and the point).
func Hit(kind, stage, when string) {
	point := kind + "/" + stage + "/" + when
	record(point)
	if point == armed {
		record(KilledPrefix + point)
		fmt.Fprintf(os.Stderr, "crashpoint: killing bangerd (pid %d) at %s\n", os.Getpid(), point)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; run nothing more
	}
}

// record appends a line to BANGER_CRASH_LIST's file, when set.
func record(line string) {
	if list == "" {
		return
	}
	listMu.Lock()
	defer listMu.Unlock()
	if f, err := os.OpenFile(list, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
}
