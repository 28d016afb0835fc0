// Package agentimage says how an image carries banger-agent: where the
// binary lives, the systemd units that run it and their enable links. The
// host bakes them into every image (the image builder writes the binary to
// InstallPath, each unit of SystemdUnits to UnitDir, and the symlinks of
// EnableLinks, which is all `systemctl enable` would do); the guest's init
// installs the daemon's agent at InstallPath at every boot. Both sides of
// the VM read it, so it depends on neither.
package agentimage

import "path"

const (
	// InstallPath is where images carry banger-agent; the daemon's init
	// installs itself there at every boot.
	InstallPath = "/usr/local/lib/banger/banger-agent"
	// UnitDir is where the units go.
	UnitDir = "/etc/systemd/system"

	agentUnit = "banger-agent.service"
	netUnit   = "banger-net.service"
)

// SystemdUnits returns the unit files, by unit name.
//
// banger-agent.service opts out of the default dependencies so that
// nothing but the local filesystems (the VM's /root disk among them, so
// health can report it) stands between boot and the agent: it does not
// wait for the network, basic.target or a slow unit elsewhere, so bangerd
// can reach a guest whose boot is stuck and say why. Restart=always with no
// start limit: the agent is the only way in. KillMode=process: stopping or
// restarting the agent kills the agent only, so the sessions it started
// keep running and the next agent adopts them (see internal/guest/guestsession).
//
// banger-net.service configures the NIC before anything networked starts
// (Before=network-pre.target and ssh.service), after the kernel has had
// the chance to load virtio_net (systemd-modules-load, udev's coldplug
// trigger; net-up also waits for the link). It is a oneshot that stays
// "active" so units ordered after it see it done.
func SystemdUnits() map[string]string {
	return map[string]string{
		agentUnit: `[Unit]
Description=banger guest agent (host channel over vsock and virtio-serial)
DefaultDependencies=no
After=systemd-modules-load.service local-fs.target
Conflicts=shutdown.target
Before=shutdown.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=` + InstallPath + ` serve
Restart=always
RestartSec=1
# Sessions the agent started keep running when it restarts.
KillMode=process

[Install]
WantedBy=multi-user.target
`,
		netUnit: `[Unit]
Description=banger guest network from the kernel command line
DefaultDependencies=no
After=local-fs.target systemd-modules-load.service systemd-udev-trigger.service
Before=network-pre.target ssh.service shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + InstallPath + ` net-up

[Install]
WantedBy=multi-user.target
`,
	}
}

// EnableLinks returns the symlinks that enable the units, as symlink path
// → target (both absolute paths in the rootfs).
func EnableLinks() map[string]string {
	links := map[string]string{}
	for _, unit := range []string{agentUnit, netUnit} {
		links[path.Join(UnitDir, "multi-user.target.wants", unit)] = path.Join(UnitDir, unit)
	}
	return links
}
