// Package imagebuild makes new images: bootstrap from nothing (debootstrap,
// a Debian kernel staged into a boot set, banger-agent, SSH access, the guest
// network bootstrap, a work-seed) and build from a registered image
// (Go-defined provisioning steps in a chroot of a copy of its rootfs). Both
// end in image.Catalog.Create, which fingerprints and commits.
package imagebuild
