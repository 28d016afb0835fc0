package vmstats

import (
	"fmt"
	"os"
	"syscall"

	"github.com/bangerdev/banger/api"
)

// diskUsage reports a disk file's size (what the guest sees) and the bytes
// it occupies on the host (its allocated blocks: less for a sparse clone).
func diskUsage(d Disk) (api.DiskStats, error) {
	fi, err := os.Stat(d.Path)
	if err != nil {
		return api.DiskStats{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return api.DiskStats{}, fmt.Errorf("%s: no block count", d.Path)
	}
	return api.DiskStats{Name: d.Name, SizeBytes: fi.Size(), UsedBytes: st.Blocks * 512}, nil
}
