// Command hvinit is the /sbin/init of hvtest's light guest: it mounts the
// work disk (/dev/vdb) at /root, starts `banger-agent serve`, and powers
// the machine off when the ACPI power button is pressed (what systemd-logind
// does in a real image), printing PowerOffMarker first, so the conformance
// suite can tell a clean shutdown from a kill.
//
// Run by the agent as `/sbin/init probe-ro vda` (not as PID 1), it is the
// suite's probe of a read-only disk instead: it prints one line,
// "ro=<the kernel's /sys/block/vda/ro> write=<ok, or why a synchronous
// write of 512 bytes at the start of /dev/vda failed>". Run as
// `/sbin/init boot-id`, it is the suite's BootIDProbe: it prints the
// kernel's boot ID (/proc/sys/kernel/random/boot_id), which every boot
// draws anew and a guest restored from a saved state keeps.
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
	if len(os.Args) == 3 && os.Args[1] == "probe-ro" && os.Getpid() != 1 {
		probeReadOnly(os.Args[2])
		return
	}
	if len(os.Args) == 2 && os.Args[1] == "boot-id" && os.Getpid() != 1 {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
		return
	}
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

// probeReadOnly reports how the guest sees the disk dev (a name such as
// vda): the kernel's read-only flag, and what a write does. The bytes
// written (0xA5) differ from any ext4 image's first sector (zeros), so a
// write that reached the host file changes its digest.
func probeReadOnly(dev string) {
	ro, err := os.ReadFile("/sys/block/" + dev + "/ro")
	flag := strings.TrimSpace(string(ro))
	if err != nil {
		flag = "unknown(" + err.Error() + ")"
	}
	fmt.Printf("ro=%s write=%s\n", flag, tryWrite("/dev/"+dev))
}

func tryWrite(path string) string {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_SYNC, 0)
	if err != nil {
		return "refused(open: " + err.Error() + ")"
	}
	defer f.Close()
	buf := make([]byte, 512)
	for i := range buf {
		buf[i] = 0xA5
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return "refused(write: " + err.Error() + ")"
	}
	if err := f.Sync(); err != nil {
		return "refused(sync: " + err.Error() + ")"
	}
	return "ok"
}
