package vm

import (
	"testing"

	"github.com/bangerdev/banger/internal/host/config"
)

// The config holds state_dir to the sockets of a VM directory named
// config.LongestVMID; every id a create makes must be no longer.
func TestVMIDsFitTheConfigsBudget(t *testing.T) {
	for range 100 {
		if id := newVMID(); len(id) > len(config.LongestVMID) {
			t.Fatalf("VM id %q is longer than config.LongestVMID %q: the config would let state_dir leave its sockets too little room", id, config.LongestVMID)
		}
	}
}
