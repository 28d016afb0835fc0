package hypervisor

import (
	"os"
	"testing"
	"time"
)

// ProcessCPUTicks counts a process's CPU time: it grows while the process
// works, and a process that is gone is an error.
func TestProcessCPUTicks(t *testing.T) {
	before, err := ProcessCPUTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
	}
	after, err := ProcessCPUTicks(os.Getpid())
	if err != nil || after <= before {
		t.Errorf("CPU ticks %d then %d (%v): want them to grow while this test spins", before, after, err)
	}
	if _, err := ProcessCPUTicks(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
