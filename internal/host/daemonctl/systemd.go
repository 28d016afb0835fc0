package daemonctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bangerdev/banger/internal/host/config"
)

// UnitName is bangerd's systemd service, as packaging/systemd installs it:
// a system unit for root's daemon, a user unit for a rootless one.
const UnitName = "bangerd.service"

// Unit is bangerd's systemd service as the CLI of one user sees it. When
// systemd manages bangerd (the unit is enabled or active), the CLI never
// spawns a daemon of its own: it starts, stops and restarts the unit
// through systemctl, so that exactly one daemon runs and systemd restarts
// it on failure.
type Unit struct {
	// Systemctl is the systemctl to run.
	Systemctl string
	// User selects the user's service manager (systemctl --user), which
	// runs a rootless daemon; root's daemon is a system unit.
	User bool
	// Booted says systemd is the running init (sd_booted(3): BootedDir
	// exists). An enabled unit counts only then: in a container or chroot
	// without systemd, systemctl reads the unit files but can start
	// nothing, and banger starts the daemon itself.
	Booted bool
	// Timeout bounds each systemctl call; 0 means a minute.
	Timeout time.Duration
}

// BootedDir exists while systemd runs as init (sd_booted(3)).
const BootedDir = "/run/systemd/system"

// FindUnit returns the Unit a CLI of uid with environment env would use,
// or nil when systemd cannot manage its daemon: no systemctl on env's
// PATH, or BANGER_HOME set (the units serve the default paths, not a
// directory of one's own such as tests use).
func FindUnit(env config.Env, uid int) *Unit {
	if v, ok := env(config.EnvHome); ok && v != "" {
		return nil
	}
	p := LookPath(env, "systemctl")
	if p == "" {
		return nil
	}
	fi, err := os.Stat(BootedDir)
	return &Unit{Systemctl: p, User: uid != 0, Booted: err == nil && fi.IsDir()}
}

// LookPath finds the executable name on env's PATH (absolute entries
// only), or returns "".
func LookPath(env config.Env, name string) string {
	path, _ := env("PATH")
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// JournalArgs are journalctl's arguments for the unit's last lines (0:
// all), following it, as JSON records or as journalctl prints them.
func (u *Unit) JournalArgs(lines int, follow, asJSON bool) []string {
	var a []string
	if u.User {
		a = append(a, "--user")
	}
	a = append(a, "--unit", UnitName, "--no-pager")
	if lines > 0 {
		a = append(a, "--lines", strconv.Itoa(lines))
	} else {
		a = append(a, "--lines", "all")
	}
	if follow {
		a = append(a, "--follow")
	}
	if asJSON {
		a = append(a, "--output", "json")
	}
	return a
}

// Command is the systemctl command line for verb, as a user would type
// it ("systemctl --user restart bangerd").
func (u *Unit) Command(verb string) string {
	return "systemctl " + strings.Join(u.args(verb), " ")
}

// Journal is the command that reads the unit's log.
func (u *Unit) Journal() string {
	if u.User {
		return "journalctl --user -u bangerd"
	}
	return "journalctl -u bangerd"
}

func (u *Unit) args(verb ...string) []string {
	var a []string
	if u.User {
		a = append(a, "--user")
	}
	return append(append(a, verb...), UnitName)
}

func (u *Unit) run(ctx context.Context, verb ...string) ([]byte, error) {
	timeout := u.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return exec.CommandContext(ctx, u.Systemctl, u.args(verb...)...).CombinedOutput()
}

// Manages reports whether systemd manages bangerd for this user: the unit
// is active (running, or started by hand), or enabled (started at boot or
// login, restarted on failure; between a crash and its restart it is not
// active) on a host systemd runs (Booted). An installed but disabled and
// stopped unit does not count: banger then starts the daemon on demand,
// as without systemd.
func (u *Unit) Manages(ctx context.Context) bool {
	if u == nil {
		return false
	}
	if _, err := u.run(ctx, "is-active", "--quiet"); err == nil {
		return true
	}
	if !u.Booted {
		return false
	}
	_, err := u.run(ctx, "is-enabled", "--quiet")
	return err == nil
}

// Do runs `systemctl [--user] VERB bangerd.service`; a failure carries
// systemctl's words and where to look next.
func (u *Unit) Do(ctx context.Context, verb string) error {
	out, err := u.run(ctx, verb)
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) && ctx.Err() == nil {
		return fmt.Errorf("running %s: %w", u.Command(verb), err)
	}
	msg := strings.TrimSpace(string(out))
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("%s failed: %s; see `%s` and `%s`", u.Command(verb), msg, u.Command("status"), u.Journal())
}
