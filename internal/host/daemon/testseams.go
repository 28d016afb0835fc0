package daemon

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/vm"
)

// TestSeams replace the two parts of bangerd that reach outside its own
// files — the hypervisor drivers and the host network — so that a test
// runs the real daemon (store, socket, handlers, operations, VM lifecycle,
// image catalog) without root, QEMU or a bridge: package daemontest's fake
// mode, with hvtest.Fake. They exist for tests only: bangerd's Main never
// sets them, and nothing a client sends can.
//
// With seams the daemon opens no QEMU or Firecracker driver, runs no KVM
// probe, creates no VM user, and neither makes nor reads a bridge, TAP or
// nftables rule: doctor reports the network checks as skipped and verify
// lists only the leaks package vm finds (directories, sockets, processes).
type TestSeams struct {
	// Hypervisor runs every VM, whatever hypervisor a request or the
	// configuration names; VMs record its Name as their driver, so
	// reconcile adopts them through it after a restart.
	Hypervisor hypervisor.Hypervisor
	// Network stands in for host networking (TAPs for guest addresses).
	Network vm.Network

	catalog atomic.Pointer[image.Catalog]
}

// Catalog returns the image catalog of the daemon running with these
// seams (nil before it has opened its store): a test registers images
// through it without the bootstrap's kernel and debootstrap.
func (s *TestSeams) Catalog() *image.Catalog { return s.catalog.Load() }

// open wires the seams in place of the host's drivers and network.
func (s *TestSeams) open(d *Daemon) (vm.Network, map[string]hypervisor.Hypervisor, vm.Selector, error) {
	if s.Hypervisor == nil || s.Network == nil {
		return nil, nil, nil, errors.New("daemon.TestSeams needs both a Hypervisor and a Network")
	}
	s.catalog.Store(d.images)
	hv := s.Hypervisor
	choose := func(context.Context, string, vm.Progress) (vm.Choice, error) { return vm.Choice{HV: hv}, nil }
	return s.Network, map[string]hypervisor.Hypervisor{hv.Name(): hv}, choose, nil
}

// seamNetworkChecks is doctor's network section when TestSeams replace the
// host network: there is nothing of the host's to judge.
func seamNetworkChecks() []api.Check {
	return []api.Check{{Name: doctor.CheckBridge, Status: api.CheckSkip,
		Detail: "the host network is a test stand-in (daemon.TestSeams): no bridge, TAP or nftables rule is used"}}
}
