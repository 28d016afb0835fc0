// Command rootinit is the /sbin/init of boottest's root filesystems: it
// proves that banger-agent's initramfs init switched root and started it.
//
// It prints RootMarker with what it sees (its PID, arguments, the type of
// /, whether the kernel filesystems were moved in, whether the initramfs'
// files are visible), mounts /dev/vdb at /root when that disk exists, and
// then either starts `banger-agent serve` and keeps running (when the
// kernel command line has rootinit.agent) or powers the machine off.
//
// With rootinit.overlay on the command line (an overlay root) it first
// prints OverlayMarker and what it finds: the probe file's contents,
// whether / remounts as systemd-remount-fs does it, df numbers of /, the
// upper and the lower, and whether st_dev is uniform; then it writes
// rootinit.token= into the probe file and renames the image's
// directory (see overlay.go).
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	rootMarker  = "BANGER-ROOT-OK"
	agentMarker = "BANGER-AGENT-STARTED"
	agentPath   = "/usr/local/lib/banger/banger-agent"
)

func main() {
	mounts := mountTypes()
	_, initErr := os.Stat("/init")
	_, modErr := os.Stat("/etc/banger/modules")
	fmt.Printf("%s pid=%d args=%q root=%s proc=%s sys=%s dev=%s initramfs-visible=%v\n",
		rootMarker, os.Getpid(), os.Args[1:], mounts["/"], mounts["/proc"], mounts["/sys"], mounts["/dev"],
		initErr == nil || modErr == nil)

	if _, err := os.Stat("/dev/vdb"); err == nil {
		if err := unix.Mount("/dev/vdb", "/root", "ext4", 0, ""); err != nil {
			fmt.Printf("rootinit: mounting /dev/vdb at /root: %v\n", err)
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	if strings.Contains(string(cmdline), "rootinit.overlay") {
		overlayReport(string(cmdline))
	}
	if strings.Contains(string(cmdline), "rootinit.agent") {
		cmd := exec.Command(agentPath, "serve")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if err := cmd.Start(); err != nil {
			fmt.Printf("rootinit: starting %s: %v\n", agentPath, err)
			powerOff()
		}
		fmt.Println(agentMarker)
		err := cmd.Wait()
		fmt.Printf("rootinit: banger-agent serve ended: %v\n", err)
		powerOff()
	}
	powerOff()
}

// mountTypes maps mount points to filesystem types.
func mountTypes() map[string]string {
	m := map[string]string{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i := 6; i+1 < len(fields); i++ {
			if fields[i] == "-" {
				m[fields[4]] = fields[i+1]
				break
			}
		}
	}
	return m
}

func powerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}
