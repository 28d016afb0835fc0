// Package provision builds and customises guest root filesystems:
// debootstrap from a Go-defined package manifest, a sandboxed runner, and
// Go-defined provisioning steps (package sets, the agents preset, a user
// script).
//
// It owns three things. Manifests (DebianBase) describe a base tree; their
// Digest keys a cache of packed trees, so Debootstrap costs a minute once
// and seconds after. A Chroot is a root directory prepared for commands:
// the host changes it needs (a /run tmpfs, resolver configuration,
// policy-rc.d) are a Plan, data applied by one executor and undone in
// reverse by Close; Cleanup undoes whatever a crashed run left, from the
// host's mount table. Each command runs in a build sandbox
// (internal/host/buildsandbox): its own namespaces, pivot_rooted into the
// tree, with a minimal /dev and few capabilities, so apt, npm install
// scripts and a user's script cannot reach the host's devices, files,
// processes or kernel settings. What the package does on the host side
// after a command (cleaning apt's caches, writing files) resolves paths
// inside the tree, never through links a build left.
// Steps (Packages, Script, WriteFile, Service, AgentsPreset) are values run
// in order by Apply, each idempotent so a failed build can simply run
// again; Describe renders them for the image manifest.
//
// Everything here needs root. The caller owns the directory being built
// (making the ext4 image, the kernel and the agent are other packages'
// business).
package provision
