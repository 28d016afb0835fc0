package doctor

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/bangerdev/banger/api"
)

// AutoFix values a check sets (api.Check.AutoFix) when `banger doctor
// --fix` knows how to repair what it found.
const (
	// FixPackagePrefix starts an AutoFix that installs one Debian
	// package: "apt:e2fsprogs".
	FixPackagePrefix = "apt:"
	// FixKVMGroup adds the user to the kvm group that owns /dev/kvm.
	FixKVMGroup = "kvm-group"
	// FixHostSetup runs `banger host setup` for the user: bridge, nftables
	// tables and TAP pool of a rootless bangerd.
	FixHostSetup = "host-setup"
	// FixManagedKey generates the managed SSH key now rather than on
	// first use.
	FixManagedKey = "managed-key"
	// FixPackages is the ID of the one fix that installs every package
	// the FixPackagePrefix checks name.
	FixPackages = "packages"
)

const kvmPath = "/dev/kvm"

func withAutoFix(c api.Check, id string) api.Check {
	c.AutoFix = id
	return c
}

// FixEnv says whom the fixes are for and with which privileges they run.
type FixEnv struct {
	// User owns the TAP pool and joins the kvm group: the user sudo was
	// run by, else the caller.
	User string
	// KeyPath is the managed SSH key.
	KeyPath string
	// IsRoot says whether the fixes run as root.
	IsRoot bool
	// Sudo says root came through sudo: the managed key then belongs to
	// User, who must generate it without sudo.
	Sudo bool
}

// Fix is one change `banger doctor --fix` makes, planned as data: what it
// repairs, what it does in words and commands, and whether it can run now.
type Fix struct {
	// ID is FixPackages, FixKVMGroup, FixHostSetup or FixManagedKey.
	ID string
	// Checks are the checks it repairs.
	Checks []string
	// Description says what will be done.
	Description string
	// Command is the command run (Exec) or, for fixes banger makes itself,
	// the command that does the same by hand.
	Command []string
	// Exec says Command is run as a program; otherwise banger applies the
	// fix in-process (host setup, key generation).
	Exec bool
	// Target is the user (kvm-group, host-setup) or the key path
	// (managed-key) the fix acts on.
	Target string
	// NeedsRoot says the fix changes the system.
	NeedsRoot bool
	// Blocked says why the fix cannot run in this process; empty when it
	// can.
	Blocked string
}

// Plan turns a report into the fixes that repair what it found, in the
// order they are applied: packages first (the other fixes may need their
// programs), then /dev/kvm access, the host network, the key.
func Plan(rep api.DoctorReport, env FixEnv) []Fix {
	var pkgs, pkgChecks, netChecks, kvmChecks, keyChecks []string
	for _, c := range rep.Checks {
		switch {
		case strings.HasPrefix(c.AutoFix, FixPackagePrefix):
			if p := strings.TrimPrefix(c.AutoFix, FixPackagePrefix); p != "" && !slices.Contains(pkgs, p) {
				pkgs = append(pkgs, p)
			}
			pkgChecks = append(pkgChecks, c.Name)
		case c.AutoFix == FixKVMGroup:
			kvmChecks = append(kvmChecks, c.Name)
		case c.AutoFix == FixHostSetup:
			netChecks = append(netChecks, c.Name)
		case c.AutoFix == FixManagedKey:
			keyChecks = append(keyChecks, c.Name)
		}
	}
	needRoot := ""
	if !env.IsRoot {
		needRoot = "needs root: run `sudo banger doctor --fix`"
	}
	var fixes []Fix
	if len(pkgs) > 0 {
		slices.Sort(pkgs)
		fixes = append(fixes, Fix{ID: FixPackages, Checks: pkgChecks,
			Description: "install the missing packages " + strings.Join(pkgs, ", "),
			Command:     append([]string{"apt-get", "install", "-y"}, pkgs...), Exec: true, NeedsRoot: true, Blocked: needRoot})
	}
	if len(kvmChecks) > 0 {
		fixes = append(fixes, Fix{ID: FixKVMGroup, Checks: kvmChecks,
			Description: "give " + env.User + " access to /dev/kvm by adding it to the kvm group (takes effect at " + env.User + "'s next login)",
			Command:     []string{"usermod", "-aG", "kvm", env.User}, Exec: true, Target: env.User, NeedsRoot: true, Blocked: needRoot})
	}
	if len(netChecks) > 0 {
		fixes = append(fixes, Fix{ID: FixHostSetup, Checks: netChecks,
			Description: "create or repair banger's bridge, nftables tables and TAP pool for " + env.User + "'s bangerd",
			Command:     []string{"banger", "host", "setup", "--user", env.User}, Target: env.User, NeedsRoot: true, Blocked: needRoot})
	}
	if len(keyChecks) > 0 {
		blocked := ""
		if env.Sudo {
			blocked = "the key belongs to " + env.User + ": run `banger doctor --fix` as " + env.User + ", without sudo"
		}
		fixes = append(fixes, Fix{ID: FixManagedKey, Checks: keyChecks,
			Description: "generate the managed SSH key " + env.KeyPath + " (ed25519, as banger does on first use)",
			Command:     []string{"ssh-keygen", "-t", "ed25519", "-N", "", "-C", "banger", "-f", env.KeyPath}, Target: env.KeyPath, Blocked: blocked})
	}
	return fixes
}

// Fixer applies fixes to the machine. The CLI's is real; tests record.
type Fixer interface {
	// Run runs a program with args and waits for it.
	Run(ctx context.Context, argv []string) error
	// HostSetup does what `banger host setup --user user` does.
	HostSetup(ctx context.Context, user string) error
	// GenerateKey creates the managed SSH key at path.
	GenerateKey(path string) error
}

// Apply makes one fix through f. A blocked fix is an error that says why.
func Apply(ctx context.Context, f Fixer, fx Fix) error {
	if fx.Blocked != "" {
		return fmt.Errorf("%s: %s", fx.ID, fx.Blocked)
	}
	switch {
	case fx.Exec:
		if err := f.Run(ctx, fx.Command); err != nil {
			return fmt.Errorf("running %s: %w", strings.Join(fx.Command, " "), err)
		}
		return nil
	case fx.ID == FixHostSetup:
		return f.HostSetup(ctx, fx.Target)
	case fx.ID == FixManagedKey:
		return f.GenerateKey(fx.Target)
	}
	return fmt.Errorf("no way to apply fix %s", fx.ID)
}

// WritePlan prints the fixes as they will be applied, each with its
// command and, when it cannot run here, why; then the problems no fix
// covers, with what to do by hand.
func WritePlan(w io.Writer, rep api.DoctorReport, fixes []Fix) error {
	var b strings.Builder
	if len(fixes) == 0 {
		b.WriteString("No fix that banger can apply.\n")
	} else {
		b.WriteString("Fixes:\n")
	}
	for i, fx := range fixes {
		fmt.Fprintf(&b, "  %d. [%s] %s\n", i+1, strings.Join(fx.Checks, ", "), fx.Description)
		how := "runs: "
		if !fx.Exec {
			how = "same as: "
		}
		fmt.Fprintf(&b, "     %s%s\n", how, shellJoin(fx.Command))
		if fx.Blocked != "" {
			fmt.Fprintf(&b, "     skipped: %s\n", fx.Blocked)
		}
	}
	var manual []api.Check
	for _, c := range rep.Checks {
		if c.AutoFix == "" && (c.Status == api.CheckFail || c.Status == api.CheckWarn) && !strings.HasPrefix(c.Fix, "nothing to do") {
			manual = append(manual, c)
		}
	}
	if len(manual) > 0 {
		b.WriteString("Not fixed automatically (do it by hand):\n")
		for _, c := range manual {
			fmt.Fprintf(&b, "  %s %s: %s\n     → %s\n", c.Status, c.Name, c.Detail, c.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// shellJoin writes argv as a shell would need it typed.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
