package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/host/sshkey"
	"golang.org/x/term"
)

// errNeedsYes is returned when --fix has nobody to ask.
var errNeedsYes = errors.New("doctor --fix asks before each change, and stdin is not a terminal: pass --yes to apply the fixes listed above without asking")

// doctorFix plans the fixes for rep, shows them, asks for each (unless
// yes), applies them in order in this process, then runs the checks
// again (recheck) and prints the new report.
//
// Fixes run here, not in bangerd: installing packages, usermod and the
// host network need root, which a rootless bangerd lacks and which a
// socket request should never be able to borrow from a root one; the
// managed key belongs to the user, so it is made by the user's own
// process.
func doctorFix(ctx context.Context, app *App, rep api.DoctorReport, yes bool, recheck func() (api.DoctorReport, error)) error {
	env, err := app.fixEnv()
	if err != nil {
		doctor.WriteText(app.Stdout, rep)
		return err
	}
	fixes := doctor.Plan(rep, env)
	if err := doctor.WritePlan(app.Stdout, rep, fixes); err != nil {
		return err
	}
	var runnable []doctor.Fix
	for _, fx := range fixes {
		if fx.Blocked == "" {
			runnable = append(runnable, fx)
		}
	}
	if len(runnable) == 0 {
		if rep.Worst() == api.CheckFail {
			return &exitError{code: ExitError}
		}
		return nil
	}
	if !yes && !stdinTerminal(app.Stdin) {
		return errNeedsYes
	}
	chosen, err := chooseFixes(app.Stdin, app.Stdout, runnable, yes)
	if err != nil {
		return err
	}
	if len(chosen) == 0 {
		fmt.Fprintln(app.Stdout, "Nothing changed.")
		if rep.Worst() == api.CheckFail {
			return &exitError{code: ExitError}
		}
		return nil
	}
	f := &cliFixer{app: app}
	var failed []string
	for _, fx := range chosen {
		fmt.Fprintf(app.Stdout, "Applying %s: %s\n", fx.ID, fx.Description)
		if err := doctor.Apply(ctx, f, fx); err != nil {
			fmt.Fprintf(app.Stderr, "banger: fix %s failed: %v\n", fx.ID, err)
			failed = append(failed, fx.ID)
		}
	}
	after, err := recheck()
	if err != nil {
		return fmt.Errorf("checking again after the fixes: %w", err)
	}
	fmt.Fprintln(app.Stdout, "\nAfter the fixes:")
	if err := doctor.WriteText(app.Stdout, after); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("fixes that failed: %s (see above)", strings.Join(failed, ", "))}
	}
	if after.Worst() == api.CheckFail {
		return &exitError{code: ExitError}
	}
	return nil
}

// chooseFixes asks y/N for each fix unless yes. An answer other than y or
// yes declines that fix; end of input declines it and all after it.
func chooseFixes(in io.Reader, out io.Writer, fixes []doctor.Fix, yes bool) ([]doctor.Fix, error) {
	if yes {
		return fixes, nil
	}
	r := bufio.NewReader(in)
	var chosen []doctor.Fix
	for _, fx := range fixes {
		fmt.Fprintf(out, "Apply %s (%s)? [y/N] ", fx.ID, fx.Description)
		line, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading the answer: %w", err)
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			chosen = append(chosen, fx)
		}
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(out)
			return chosen, nil
		}
	}
	return chosen, nil
}

// stdinTerminal reports whether r is a terminal someone can answer on.
func stdinTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// fixEnv says whom the fixes are for: the user sudo was run by, else the
// caller.
func (a *App) fixEnv() (doctor.FixEnv, error) {
	cfg, err := a.Config()
	if err != nil {
		return doctor.FixEnv{}, err
	}
	env := doctor.FixEnv{IsRoot: os.Geteuid() == 0, KeyPath: cfg.Paths.ManagedSSHKey()}
	if name, _ := a.Env("SUDO_USER"); name != "" && env.IsRoot {
		env.User, env.Sudo = name, true
		return env, nil
	}
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		return env, fmt.Errorf("looking up the current user: %w", err)
	}
	env.User = u.Username
	return env, nil
}

// localNetworkChecks reads the host network from this process when no
// bangerd answers. It assumes a rootless bangerd (the one the CLI
// starts); a root one sets up its own network, so the host setup it
// suggests does no harm there.
func localNetworkChecks(ctx context.Context, app *App, cfg *config.Config) []api.Check {
	owner, _, err := app.hostUser("")
	if err != nil {
		return []api.Check{{Name: doctor.CheckBridge, Status: api.CheckSkip, Detail: err.Error(), Fix: "set SUDO_USER to an existing user"}}
	}
	hc := hostnet.Config{Bridge: cfg.Network.Bridge, Subnet: cfg.Network.Subnet, PoolSize: cfg.Network.TAPPoolSize,
		Table: hostnet.DefaultTable, TAPOwner: owner,
		AllowCIDRs: cfg.Network.AllowCIDRs, DNS: hostnet.Resolvers(hostnet.ResolvConf)}
	ex, err := app.netExecutor()
	if err == nil {
		defer ex.Close()
		var st hostnet.State
		if st, err = ex.Observe(ctx, hc); err == nil {
			return doctor.NetworkChecks(doctor.NetworkInputs{Config: hc, State: st})
		}
	}
	return []api.Check{{Name: doctor.CheckBridge, Status: api.CheckSkip, Detail: "reading the host network: " + err.Error(),
		Fix: "start bangerd (`banger daemon start`) and run doctor again"}}
}

// cliFixer applies fixes from the CLI process.
type cliFixer struct{ app *App }

var _ doctor.Fixer = (*cliFixer)(nil)

// Run runs a program found on PATH, its output shown to the user.
func (f *cliFixer) Run(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f.app.Stdout, f.app.Stderr
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.Run()
}

// HostSetup runs the code of `banger host setup --user user`.
func (f *cliFixer) HostSetup(ctx context.Context, user string) error {
	return f.app.hostSetup(ctx, user, 0)
}

// GenerateKey makes the managed key as banger does on first use.
func (f *cliFixer) GenerateKey(path string) error {
	k, err := sshkey.Ensure(path, true)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f.app.Stdout, "generated %s (%s)\n", k.Path, k.Fingerprint)
	return err
}
