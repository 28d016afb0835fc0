package vm

// Close ends the daemon's agent sessions (one per running VM) when it shuts
// down. The VMs keep running; a daemon started later connects again.
func (m *Manager) Close() { m.links.Close() }
