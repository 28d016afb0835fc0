package vmstats

import (
	"context"
	"errors"
	"fmt"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// maxGuestMemory bounds a guest's reported memory when its configured
// memory is not known: 16 TiB.
const maxGuestMemory = 16 << 40

// guestMemory asks the guest for its memory until ctx ends. The guest may
// be stuck, so the call runs apart: when ctx ends first it is abandoned
// (the agent session's own deadlines end it) and the figures are unknown.
func (s *Sampler) guestMemory(ctx context.Context, t Target) (total, used *int64) {
	type answer struct {
		m   agentproto.MemInfo
		err error
	}
	done := make(chan answer, 1)
	go func() {
		var a answer
		c, err := t.Agent(ctx)
		if err == nil && c == nil {
			err = errors.New("no agent")
		}
		if err == nil {
			err = c.Call(ctx, agentproto.MethodMemInfo, nil, &a.m)
		}
		a.err = err
		done <- a
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	if a.err != nil {
		s.debug("guest memory unknown", t, a.err)
		return nil, nil
	}
	total, used, err := checkMemInfo(a.m, t.MemoryMiB)
	if err != nil {
		s.debug("guest memory report refused", t, err)
	}
	return total, used
}

// checkMemInfo turns the guest's report into total and used bytes, or
// refuses it (nil, nil and why) when it cannot be true of a VM given
// memoryMiB (0: not known): no memory, negative or more available than
// total, or a total above twice the configured memory.
func checkMemInfo(m agentproto.MemInfo, memoryMiB int) (total, used *int64, err error) {
	limit := int64(maxGuestMemory)
	if memoryMiB > 0 && int64(memoryMiB) < maxGuestMemory>>21 {
		limit = int64(memoryMiB) << 21 // twice memoryMiB MiB
	}
	switch {
	case m.TotalBytes <= 0:
		err = fmt.Errorf("total %d bytes", m.TotalBytes)
	case m.AvailableBytes < 0:
		err = fmt.Errorf("available %d bytes", m.AvailableBytes)
	case m.AvailableBytes > m.TotalBytes:
		err = fmt.Errorf("available %d bytes exceeds total %d", m.AvailableBytes, m.TotalBytes)
	case m.TotalBytes > limit:
		err = fmt.Errorf("total %d bytes exceeds twice the VM's %d MiB", m.TotalBytes, memoryMiB)
	}
	if err != nil {
		return nil, nil, err
	}
	t, u := m.TotalBytes, m.TotalBytes-m.AvailableBytes
	return &t, &u, nil
}
