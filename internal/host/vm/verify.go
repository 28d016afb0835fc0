package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor"
)

// Leaks lists what no VM record explains: hypervisor processes working on
// a VM directory that is not that VM's recorded process, sockets of VMs
// that are not running, and VM directories without a record. Network
// leaks (TAPs, NAT rules) come from package hostnet.
func (m *Manager) Leaks(ctx context.Context) ([]api.Leak, error) {
	vms, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]VM{}
	ownPIDs := map[int]bool{}
	for _, v := range vms {
		byID[v.ID] = v
		if h := v.Runtime.Handle; h != nil && hypervisor.Alive(*h) {
			ownPIDs[h.PID] = true
		}
	}
	var leaks []api.Leak
	root := filepath.Join(m.Cfg.Paths.StateDir, "vms")
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		v, ok := byID[e.Name()]
		dir := filepath.Join(root, e.Name())
		if !ok {
			leaks = append(leaks, api.Leak{Kind: "disk", What: dir, Detail: "a VM directory without a VM record"})
			continue
		}
		if _, err := os.Stat(stateTmp(dir)); err == nil {
			leaks = append(leaks, api.Leak{Kind: "disk", What: stateTmp(dir), Detail: "an unfinished save of vm " + v.Name})
		}
		if _, err := os.Stat(stateDir(dir)); err == nil && v.State != api.VMPaused {
			leaks = append(leaks, api.Leak{Kind: "disk", What: stateDir(dir), Detail: fmt.Sprintf("a saved state of vm %s, which is %s", v.Name, v.State)})
		}
		if v.State == api.VMRunning {
			continue
		}
		socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
		for _, s := range socks {
			leaks = append(leaks, api.Leak{Kind: "socket", What: s, Detail: fmt.Sprintf("vm %s is %s", v.Name, v.State)})
		}
	}
	warm, err := m.warmLeftovers(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range warm {
		leaks = append(leaks, api.Leak{Kind: "disk", What: w, Detail: "an unfinished warm snapshot, or one of an image that is gone"})
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || ownPIDs[pid] || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(root+"/")) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		leaks = append(leaks, api.Leak{Kind: "process", What: fmt.Sprintf("pid %d (%s)", pid, filepath.Base(args[0])),
			Detail: "works on a VM directory but is no VM's recorded hypervisor"})
	}
	return leaks, nil
}
