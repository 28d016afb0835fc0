// Command modinit is a test /init for kernelstage's boot test: it loads the
// modules listed in /etc/banger/modules the way banger-agent's init does
// (finit_module, in order), reports on the console whether the virtio disk
// appeared, and powers the machine off.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("KS-FAIL %v\n", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	release := unix.ByteSliceToString(uts.Release[:])
	f, err := os.Open("/etc/banger/modules")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rel, ok := strings.CutPrefix(line, "# release "); ok {
			if rel != release {
				return fmt.Errorf("modules list is for %s, kernel is %s", rel, release)
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// "<path>" or "<path> optional"; optional modules must load too:
		// this kernel has them all.
		line = strings.Fields(line)[0]
		p := filepath.Join("/lib/modules", release, line)
		m, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(m.Fd()), "", 0)
		m.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("loading %s: %w", line, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/sys/block/vda"); err == nil {
			fmt.Printf("KS-OK %s loaded %d modules, /sys/block/vda present\n", release, n)
			return nil
		}
	}
	return fmt.Errorf("loaded %d modules but no virtio disk appeared in /sys/block", n)
}
