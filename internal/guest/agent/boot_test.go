package agent

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/guest/guestinit"
	"github.com/bangerdev/banger/internal/guest/guestinit/boottest"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// TestServeInGuest boots a real guest (QEMU software emulation; this host
// has no vhost-vsock) whose init starts `banger-agent serve`, and asks it
// for its health over a virtio-serial port, twice, on two host
// connections: the second proves the agent survives the host going away.
func TestServeInGuest(t *testing.T) {
	qemu := boottest.RequireQEMU(t)
	k := boottest.RequireKernel(t)
	order, err := boottest.ModuleOrder(k, "virtio_pci", "virtio_blk", "virtio_console")
	if err != nil {
		t.Fatalf("resolving module dependencies: %v", err)
	}
	var mods []guestinit.Module
	for _, p := range order {
		mods = append(mods, guestinit.Module{Path: p})
	}
	agent := boottest.BuildAgent(t)
	// The boot payload: the agent key travels in an archive appended to
	// the initramfs, as bangerd hands it.
	key := []byte("the agent key of TestServeInGuest")[:32]
	initrd := filepath.Join(t.TempDir(), "initrd-with-key.img")
	if err := hvtest.WithBootKey(initrd, boottest.Initramfs(t, agent, k, mods), key); err != nil {
		t.Fatal(err)
	}
	root := boottest.RootFS(t, 64<<20, map[string]string{
		"sbin/init":            boottest.BuildRootInit(t),
		boottest.AgentPath[1:]: agent,
	})
	work := boottest.RootFS(t, 16<<20, nil) // the VM's /root disk, /dev/vdb

	sock := filepath.Join(t.TempDir(), "agent.sock")
	vm := boottest.Boot(t, boottest.Options{
		QEMU:   qemu,
		Kernel: k.Vmlinuz,
		Initrd: initrd,
		Disks:  []string{root, work},
		Append: "console=ttyS0 root=/dev/vda panic=-1 rootinit.agent",
		Devices: []string{
			"-device", "virtio-serial-pci",
			"-chardev", "socket,id=agent0,path=" + sock + ",server=on,wait=off",
			"-device", "virtserialport,chardev=agent0,name=" + agentproto.SerialPortName,
		},
	})
	if _, err := vm.WaitFor(boottest.AgentMarker, 2*time.Minute); err != nil {
		t.Fatalf("%v; console:\n%s", err, vm.Console())
	}

	for round := range 2 {
		if round > 0 {
			// Leave the agent without a host for a while: its reads
			// return EOF until the next connection.
			time.Sleep(2 * time.Second)
		}
		h, elapsed, err := healthOverSocket(sock, key, 2*time.Minute)
		if err != nil {
			t.Fatalf("round %d: %v; console:\n%s", round, err, vm.Console())
		}
		t.Logf("round %d: health after %v: %+v", round, elapsed.Round(time.Millisecond), h)
		if h.Protocol != agentmux.Protocol || h.Kernel != k.Release || h.Root != "ext4" || h.RootMount != "/dev/vdb" || h.UptimeMS <= 0 || h.BuildID == "" {
			t.Errorf("round %d: health = %+v; want protocol %d, kernel %s, root ext4, /root from /dev/vdb", round, h, agentmux.Protocol, k.Release)
		}
	}
	if strings.Contains(vm.Console(), "banger-agent serve ended") {
		t.Errorf("the agent exited:\n%s", vm.Console())
	}
	for _, l := range strings.Split(vm.Console(), "\n") {
		if strings.Contains(l, "banger-init:") || strings.Contains(l, "level=") || strings.Contains(l, boottest.RootMarker) {
			t.Logf("guest: %s", strings.TrimSpace(l))
		}
	}
}

// healthOverSocket connects to QEMU's end of the virtio-serial port,
// upgrades to an authenticated session with key and asks for health,
// until the agent answers. What the host writes before the agent opened
// the port is lost (the guest kernel discards it), so each upgrade
// attempt has a short timeout and is retried on the same connection; the
// replies to timed-out attempts arrive later as stale lines the next
// attempt skips.
func healthOverSocket(sock string, key []byte, timeout time.Duration) (agentproto.Health, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	var conn net.Conn
	for {
		var err error
		conn, err = net.Dial("unix", sock)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return agentproto.Health{}, 0, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		h, err := health(ctx, conn, key)
		cancel()
		if err == nil {
			return h, time.Since(start), nil
		}
		lastErr = err
		if !errors.Is(err, context.DeadlineExceeded) {
			return agentproto.Health{}, 0, err
		}
	}
	return agentproto.Health{}, 0, lastErr
}
