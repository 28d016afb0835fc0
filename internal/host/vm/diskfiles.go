package vm

import "os"

// DiskFile is one of a VM's disk files on the host.
type DiskFile struct {
	Name string // "rootfs" or "work"
	Path string
}

// DiskFiles lists the disk files of the VM id: its root disk ("rootfs":
// the upper disk of its overlay root, which holds all it changed of its
// image's shared rootfs, or for a VM made by an older banger its own copy
// of the rootfs) and its work disk, mounted at /root. The shared base is
// the image's, not the VM's.
func (m *Manager) DiskFiles(id string) []DiskFile {
	dir := m.Dir(id)
	if _, err := os.Stat(upperDisk(dir)); err == nil {
		return []DiskFile{{Name: "rootfs", Path: upperDisk(dir)}, {Name: "work", Path: workDisk(dir)}}
	}
	return []DiskFile{{Name: "rootfs", Path: rootDisk(dir)}, {Name: "work", Path: workDisk(dir)}}
}
