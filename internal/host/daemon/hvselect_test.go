package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/hypervisor"
	"github.com/bangerdev/banger/internal/host/hypervisor/firecracker"
	"github.com/bangerdev/banger/internal/host/hypervisor/qemu"
)

// TestConfineHypervisors: a daemon running as root runs QEMU as vm_user
// and jails Firecracker as that user by default; jailer = false and
// vm_user = "" are honoured, with a warning.
func TestConfineHypervisors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a daemon running as a normal user leaves its hypervisors as they are")
	}
	vmUser, err := hypervisor.EnsureVMUser(context.Background(), hypervisor.DefaultVMUser)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		mod        func(*config.Config)
		wantUser   bool // QEMU runs as the VM user
		wantJailer bool
		wantWarn   string
	}{
		{"defaults", nil, true, true, ""},
		{"jailer off", func(c *config.Config) { c.Jailer = false }, true, false, "jailer = false"},
		{"no vm user", func(c *config.Config) { c.VMUser = "" }, false, false, "vm_user is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default(config.Paths{}, "")
			if tt.mod != nil {
				tt.mod(cfg)
			}
			var logs bytes.Buffer
			d := &Daemon{
				cfg:  cfg,
				log:  slog.New(slog.NewTextHandler(&logs, nil)),
				qemu: &qemu.Driver{},
				fc:   &firecracker.Driver{Jailer: cfg.Jailer},
			}
			for range 2 { // idempotent: the second call changes nothing
				if err := d.confineHypervisors(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if got := d.qemu.User != nil; got != tt.wantUser {
				t.Errorf("QEMU runs as the VM user: %v, want %v", got, tt.wantUser)
			}
			if tt.wantUser && *d.qemu.User != vmUser {
				t.Errorf("QEMU's user = %+v, want %+v", *d.qemu.User, vmUser)
			}
			if d.fc.Jailer != tt.wantJailer {
				t.Errorf("Firecracker jailed: %v, want %v", d.fc.Jailer, tt.wantJailer)
			}
			if tt.wantJailer && (d.fc.Jail.UID != int(vmUser.UID) || d.fc.Jail.GID != int(vmUser.GID)) {
				t.Errorf("jail uid/gid = %d/%d, want the VM user's %d/%d", d.fc.Jail.UID, d.fc.Jail.GID, vmUser.UID, vmUser.GID)
			}
			if tt.wantWarn != "" && strings.Count(logs.String(), tt.wantWarn) != 1 {
				t.Errorf("want one warning with %q, logs:\n%s", tt.wantWarn, logs.String())
			}
		})
	}
}
