// Command hvinit is the /sbin/init of hvtest's light guest: it mounts the
// work disk (/dev/vdb) at /root, starts `banger-agent serve`, and powers
// the machine off when the ACPI power button is pressed (what systemd-logind
// does in a real image), printing PowerOffMarker first, so the conformance
// suite can tell a clean shutdown from a kill.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	initMarker     = "HVTEST-INIT"
	powerOffMarker = "HVTEST-POWER-BUTTON"
	agentPath      = "/usr/local/lib/banger/banger-agent"

	evKey    = 1
	keyPower = 116
)

func main() {
	fmt.Println(initMarker)
	if _, err := os.Stat("/dev/vdb"); err == nil {
		if err := unix.Mount("/dev/vdb", "/root", "ext4", 0, ""); err != nil {
			fmt.Printf("hvinit: mounting /dev/vdb at /root: %v\n", err)
		}
	}
	go watchPowerButton()
	go reap()
	for {
		cmd := exec.Command(agentPath, "serve")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		err := cmd.Run()
		fmt.Printf("hvinit: banger-agent serve ended: %v; restarting it\n", err)
		time.Sleep(time.Second)
	}
}

// watchPowerButton waits for the ACPI power button's input device and
// powers off when it reports a press.
func watchPowerButton() {
	for {
		names, _ := filepath.Glob("/sys/class/input/event*/device/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil || strings.TrimSpace(string(b)) != "Power Button" {
				continue
			}
			readButton("/dev/input/" + filepath.Base(filepath.Dir(filepath.Dir(n))))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readButton(dev string) {
	f, err := os.Open(dev)
	if err != nil {
		fmt.Printf("hvinit: %v\n", err)
		return
	}
	ev := make([]byte, 24) // struct input_event on x86-64
	for {
		if _, err := f.Read(ev); err != nil {
			fmt.Printf("hvinit: reading %s: %v\n", dev, err)
			return
		}
		typ := binary.LittleEndian.Uint16(ev[16:])
		code := binary.LittleEndian.Uint16(ev[18:])
		value := int32(binary.LittleEndian.Uint32(ev[20:]))
		if typ == evKey && code == keyPower && value == 1 {
			fmt.Println(powerOffMarker)
			unix.Sync()
			unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		}
	}
}

// reap collects orphans, as PID 1 must.
func reap() {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, 0, nil); err != nil {
			time.Sleep(time.Second)
		}
	}
}
