package agentproto

import "context"

// MethodMemInfo asks the guest for its own view of its memory (no params;
// result MemInfo), read from its /proc/meminfo. An agent that predates it
// answers unknown_type.
const MethodMemInfo = "meminfo"

// MemInfo is the guest's memory as its kernel reports it. The host treats
// it as the guest's word: bounded and checked, never trusted.
type MemInfo struct {
	TotalBytes int64 `json:"total_bytes"`
	// AvailableBytes is what the guest could give to new work without
	// swapping (MemAvailable); used is total minus available.
	AvailableBytes int64 `json:"available_bytes"`
}

// MemInfoer is a Handler that reports its memory (served by Call as
// MethodMemInfo). It is separate from GuestOps so that handlers written
// before it (test fakes, older agents) still serve the rest.
type MemInfoer interface {
	MemInfo(ctx context.Context) (MemInfo, error)
}
