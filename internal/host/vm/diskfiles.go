package vm

// DiskFile is one of a VM's disk files on the host.
type DiskFile struct {
	Name string // "rootfs" or "work"
	Path string
}

// DiskFiles lists the disk files of the VM id: its root filesystem (a
// clone of its image's) and its work disk, mounted at /root.
func (m *Manager) DiskFiles(id string) []DiskFile {
	dir := m.Dir(id)
	return []DiskFile{{Name: "rootfs", Path: rootDisk(dir)}, {Name: "work", Path: workDisk(dir)}}
}
