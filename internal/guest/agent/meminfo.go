package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

var _ agentproto.MemInfoer = guestOps{}

// MemInfo reads the guest's memory from /proc/meminfo (guestOps.meminfo in
// tests).
func (g guestOps) MemInfo(context.Context) (agentproto.MemInfo, error) {
	path := g.meminfo
	if path == "" {
		path = "/proc/meminfo"
	}
	f, err := os.Open(path)
	if err != nil {
		return agentproto.MemInfo{}, err
	}
	defer f.Close()
	return parseMemInfo(f)
}

// parseMemInfo reads MemTotal and MemAvailable ("Name:   123 kB" lines).
// A kernel older than 3.14 has no MemAvailable; then it is estimated as
// MemFree + Buffers + Cached, the figure free(1) used before.
func parseMemInfo(r io.Reader) (agentproto.MemInfo, error) {
	kb := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch name {
		case "MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached":
		default:
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return agentproto.MemInfo{}, fmt.Errorf("meminfo: %s: %w", name, err)
		}
		kb[name] = n
	}
	if err := sc.Err(); err != nil {
		return agentproto.MemInfo{}, fmt.Errorf("meminfo: %w", err)
	}
	total, ok := kb["MemTotal"]
	if !ok {
		return agentproto.MemInfo{}, fmt.Errorf("meminfo: no MemTotal line")
	}
	avail, ok := kb["MemAvailable"]
	if !ok {
		avail = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	return agentproto.MemInfo{TotalBytes: total << 10, AvailableBytes: avail << 10}, nil
}
