package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/spf13/cobra"
)

func newDoctorCmd(app *App) *cobra.Command {
	var (
		asJSON       bool
		deep         bool
		fix, yes     bool
		probeTimeout time.Duration
	)
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host and explain how to fix what is missing",
		Long: `Check everything banger needs from this host, one check per line with a
status (ok, warn, fail, skip) and, for anything not ok, the fix.

Whether KVM can really boot a guest is only known by booting one: --deep
runs that probe (a tiny guest under QEMU+KVM, time-boxed) as a daemon
operation with live stages and records the result, which later quick runs
report. Without --deep the last recorded probe is shown, or "skip".

--fix applies the fixes banger knows: missing packages (apt-get install),
access to /dev/kvm (the kvm group), the bridge, tables and TAP pool of a
rootless bangerd (as ` + "`banger host setup`" + `) and a missing managed SSH key.
Each fix is shown with its command and asked for (y/N) unless --yes;
without a terminal --fix needs --yes. Fixes that change the system need
root (` + "`sudo banger doctor --fix`" + `); the managed key is the user's, so it is
made without sudo. Afterwards the checks run again. What no fix covers is
listed with what to do by hand.

Exits 1 when any check fails.`,
		Example: "  banger doctor\n  banger doctor --deep\n  banger doctor --json | jq '.checks[] | select(.status != \"ok\")'\n  sudo banger doctor --fix\n  banger doctor --fix --yes",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if yes && !fix {
				return usageError("--yes only goes with --fix")
			}
			if fix && asJSON {
				return usageError("--fix prints its plan as text: leave out --json")
			}
			// Under sudo, --fix checks the host itself: asking would start
			// a root bangerd, which the user's rootless one is not.
			hostOnly := false
			if sudoUser, _ := app.Env("SUDO_USER"); fix && sudoUser != "" && os.Geteuid() == 0 {
				hostOnly = true
			}
			rep, err := runDoctor(c.Context(), app, deep, probeTimeout, asJSON, hostOnly)
			if err != nil {
				return err
			}
			if fix {
				return doctorFix(c.Context(), app, rep, yes, func() (api.DoctorReport, error) {
					return runDoctor(c.Context(), app, false, probeTimeout, true, hostOnly)
				})
			}
			if asJSON {
				if err := printJSON(app.Stdout, rep); err != nil {
					return err
				}
			} else if err := doctor.WriteText(app.Stdout, rep); err != nil {
				return err
			}
			if rep.Worst() == api.CheckFail {
				return &exitError{code: ExitError}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.Flags().BoolVar(&deep, "deep", false, "also boot a probe guest to test KVM (up to --probe-timeout)")
	c.Flags().BoolVar(&fix, "fix", false, "apply the fixes banger knows, asking before each")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "with --fix: apply without asking")
	c.Flags().DurationVar(&probeTimeout, "probe-timeout", 20*time.Second, "how long the KVM probe guest may take to reach userspace")
	return c
}

// runDoctor asks the daemon for the report. When the configuration or the
// daemon is broken, or hostOnly says not to ask it, it checks the host
// in-process, so doctor can explain why banger does not work.
func runDoctor(ctx context.Context, app *App, deep bool, probeTimeout time.Duration, quiet, hostOnly bool) (api.DoctorReport, error) {
	cfg, cfgErr := app.Config()
	if cfgErr != nil {
		paths, err := app.paths()
		if err != nil {
			return api.DoctorReport{}, err
		}
		home, _ := app.Env("HOME")
		rep := doctor.Run(ctx, doctor.System{}, doctor.Inputs{Config: config.Default(paths, home)})
		rep.Checks[0] = doctor.ConfigError(cfgErr)
		rep.Checks = append(rep.Checks, api.Check{Name: doctor.CheckDaemon, Status: api.CheckSkip,
			Detail: "not started: the configuration is invalid", Fix: "fix the config first"})
		return rep, nil
	}
	if hostOnly {
		rep := doctor.Run(ctx, doctor.System{}, doctor.Inputs{Config: cfg, ConfigFileFound: app.cfgFound})
		rep.Checks = append(rep.Checks, localNetworkChecks(ctx, app, cfg)...)
		rep.Checks = append(rep.Checks, api.Check{Name: doctor.CheckDaemon, Status: api.CheckSkip,
			Detail: "not asked: under sudo, doctor --fix checks the host itself rather than start a root bangerd",
			Fix:    "run `banger doctor` without sudo to check your bangerd"})
		return rep, nil
	}
	cl, err := app.Client(ctx)
	if err != nil {
		rep := doctor.Run(ctx, doctor.System{}, doctor.Inputs{Config: cfg, ConfigFileFound: app.cfgFound})
		rep.Checks = append(rep.Checks, localNetworkChecks(ctx, app, cfg)...)
		rep.Checks = append(rep.Checks, api.Check{Name: doctor.CheckDaemon, Status: api.CheckFail, Detail: err.Error(),
			Fix: "see `banger daemon logs` and " + cfg.Paths.StateDir + "/bangerd.out"})
		return rep, nil
	}
	defer cl.Close()
	st, err := cl.DaemonStatus(ctx)
	if err != nil {
		return api.DoctorReport{}, err
	}
	daemonCheck := api.Check{Name: doctor.CheckDaemon, Status: api.CheckOK,
		Detail: fmt.Sprintf("bangerd %s (build %s, pid %d) on %s", st.Version, st.BuildID, st.PID, st.Socket)}

	var rep api.DoctorReport
	if deep {
		op, err := cl.BeginDeepDoctor(ctx, api.DeepDoctorRequest{ProbeTimeout: api.Duration(probeTimeout)})
		if err != nil {
			return rep, err
		}
		if !quiet {
			fmt.Fprintf(app.Stderr, "doctor --deep: operation %s\n", op.ID)
		}
		// In --json mode the events are not printed: stdout holds the report.
		watchApp := *app
		if quiet {
			watchApp.Stderr = discard{}
		}
		final, err := followOperation(ctx, &watchApp, cl, op, false)
		if err != nil {
			return rep, err
		}
		if err := decodeResult(final, &rep); err != nil {
			return rep, err
		}
	} else if rep, err = cl.Doctor(ctx); err != nil {
		return rep, err
	}
	rep.Checks = append(rep.Checks, daemonCheck)
	return rep, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
