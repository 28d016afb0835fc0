package api

import "time"

// VMStats are a VM's resource figures at one moment (GET
// /v1/vms/{name}/stats, and GET /v1/stats for every VM at once).
type VMStats struct {
	VM   string    `json:"vm"`
	Time time.Time `json:"time"`
	// CPUPercent is the hypervisor process's CPU use since the previous
	// sample (100 = one core busy); -1 when not yet known.
	CPUPercent float64 `json:"cpu_percent"`
	// HostRSSBytes is the resident memory of the hypervisor process.
	HostRSSBytes int64 `json:"host_rss_bytes"`
	// GuestMemTotalBytes and GuestMemUsedBytes are the guest's own view
	// (from its agent's /proc/meminfo: total minus available); nil when
	// the agent did not answer. Reported by the guest, so only bounded
	// and checked, not trusted.
	GuestMemTotalBytes *int64 `json:"guest_mem_total_bytes,omitempty"`
	GuestMemUsedBytes  *int64 `json:"guest_mem_used_bytes,omitempty"`
	// Disks lists each of the VM's disk files: its size and the bytes
	// it occupies on the host.
	Disks []DiskStats `json:"disks"`
	// NetRxBytes and NetTxBytes count the VM's TAP device traffic as the
	// guest sees it (received by the guest, sent by the guest).
	NetRxBytes int64 `json:"net_rx_bytes"`
	NetTxBytes int64 `json:"net_tx_bytes"`
}

// DiskStats is one disk file of a VM.
type DiskStats struct {
	Name      string `json:"name"` // rootfs, work
	SizeBytes int64  `json:"size_bytes"`
	UsedBytes int64  `json:"used_bytes"`
}

// StatsList is the answer to GET /v1/stats: the running VMs' figures.
type StatsList struct {
	Stats []VMStats `json:"stats"`
}
