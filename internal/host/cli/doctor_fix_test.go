package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/doctor"
	"github.com/bangerdev/banger/internal/host/sshkey"
	"github.com/bangerdev/banger/internal/shared/netnstest"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestChooseFixes(t *testing.T) {
	fixes := []doctor.Fix{{ID: doctor.FixHostSetup, Description: "set up"}, {ID: doctor.FixManagedKey, Description: "make key"}}
	tests := []struct {
		name    string
		input   string
		yes     bool
		want    []string
		prompts int
	}{
		{"yes to both", "y\nyes\n", false, []string{doctor.FixHostSetup, doctor.FixManagedKey}, 2},
		{"no, then yes", "n\nY\n", false, []string{doctor.FixManagedKey}, 2},
		{"anything else is no", "sure\n\n", false, nil, 2},
		{"end of input declines the rest", "y", false, []string{doctor.FixHostSetup}, 1},
		{"empty input declines all", "", false, nil, 1},
		{"--yes does not ask", "", true, []string{doctor.FixHostSetup, doctor.FixManagedKey}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := chooseFixes(strings.NewReader(tt.input), &out, fixes, tt.yes)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, fx := range got {
				ids = append(ids, fx.ID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("chosen (-want +got):\n%s", diff)
			}
			if n := strings.Count(out.String(), "[y/N]"); n != tt.prompts {
				t.Errorf("asked %d times, want %d:\n%s", n, tt.prompts, out.String())
			}
		})
	}
}

// fakeProgram writes an executable script named name into dir that
// appends its arguments to log and exits with code.
func fakeProgram(t *testing.T, dir, name, log string, code int) {
	t.Helper()
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// The real fixer runs the planned command from PATH: a fake usermod
// records what it was given.
func TestCLIFixerRunsFromPATH(t *testing.T) {
	bin := t.TempDir()
	log := filepath.Join(t.TempDir(), "calls")
	fakeProgram(t, bin, "usermod", log, 0)
	fakeProgram(t, bin, "apt-get", log, 1)
	t.Setenv("PATH", bin)
	var out bytes.Buffer
	f := &cliFixer{app: &App{Stdout: &out, Stderr: &out}}
	fixes := doctor.Plan(api.DoctorReport{Checks: []api.Check{
		{Name: doctor.CheckE2fsprogs, Status: api.CheckFail, AutoFix: doctor.FixPackagePrefix + "e2fsprogs"},
		{Name: doctor.CheckKVMDevice, Status: api.CheckFail, AutoFix: doctor.FixKVMGroup},
	}}, doctor.FixEnv{User: "alice", IsRoot: true})
	if err := doctor.Apply(context.Background(), f, fixes[0]); err == nil || !strings.Contains(err.Error(), "apt-get install -y e2fsprogs: exit status 1") {
		t.Errorf("a failing apt-get gave %v, want its command and exit status", err)
	}
	if err := doctor.Apply(context.Background(), f, fixes[1]); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	if diff := cmp.Diff("install -y e2fsprogs\n-aG kvm alice\n", string(got)); diff != "" {
		t.Errorf("recorded calls (-want +got):\n%s", diff)
	}
}

// Without a terminal, --fix applies nothing unless --yes, and says so.
func TestDoctorFixNeedsYesWithoutTerminal(t *testing.T) {
	env := map[string]string{"BANGER_HOME": t.TempDir(), "HOME": t.TempDir()}
	app := &App{Stdin: strings.NewReader("y\n"), Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{},
		Env: config.MapEnv(env), UID: os.Getuid(), DaemonBin: "/nonexistent/bangerd"}
	if os.Geteuid() == 0 {
		ns := newTestNetns(t) // as root the plan holds host setup: never for this machine
		app.netNS = &ns
	}
	code := Run(context.Background(), []string{"doctor", "--fix"}, app)
	stderr := app.Stderr.(*bytes.Buffer).String()
	if code != ExitError || !strings.Contains(stderr, "pass --yes") {
		t.Errorf("exit %d, stderr %q: want a refusal naming --yes", code, stderr)
	}
	if !strings.Contains(app.Stdout.(*bytes.Buffer).String(), "generate the managed SSH key") {
		t.Errorf("the plan was not shown before refusing:\n%s", app.Stdout)
	}
	paths, _ := config.DefaultPaths(config.MapEnv(env), os.Getuid())
	if _, err := os.Stat(paths.ManagedSSHKey()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the key was made without --yes (stat: %v)", err)
	}
}

// In a test namespace with a TAP pool removed after a host setup and no
// managed key, `doctor --fix --yes` restores both (and asks a fake
// apt-get for exactly the packages missing from its PATH), and the next
// doctor run finds them fine.
func TestDoctorFixRestoresTAPPoolAndKey(t *testing.T) {
	ns := newTestNetns(t)
	home := t.TempDir()
	env := config.MapEnv(map[string]string{"BANGER_HOME": home, "HOME": t.TempDir()})
	newApp := func() (*App, *bytes.Buffer, *bytes.Buffer) {
		var out, errb bytes.Buffer
		return &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: env, UID: os.Getuid(),
			DaemonBin: "/nonexistent/bangerd", netNS: &ns}, &out, &errb
	}
	report := func() api.DoctorReport {
		t.Helper()
		app, out, errb := newApp()
		Run(context.Background(), []string{"doctor", "--json"}, app)
		var rep api.DoctorReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("doctor --json: %v\n%s\n%s", err, out, errb)
		}
		return rep
	}
	check := func(rep api.DoctorReport, name string) api.Check {
		for _, c := range rep.Checks {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no %s check in %+v", name, rep)
		return api.Check{}
	}

	app, out, errb := newApp()
	if code := Run(context.Background(), []string{"host", "setup"}, app); code != 0 {
		t.Fatalf("host setup: exit %d\n%s%s", code, out, errb)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "tap-pool-") {
			if err := nl.LinkDel(l); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("host setup made no pool TAPs to remove")
	}
	before := report()
	if c := check(before, doctor.CheckTAPPool); c.AutoFix != doctor.FixHostSetup {
		t.Fatalf("with the pool removed tap-pool is %+v, want a host-setup fix", c)
	}
	paths, err := config.DefaultPaths(env, os.Getuid())
	if err != nil {
		t.Fatal(err)
	}
	keyPath := paths.ManagedSSHKey()
	if c := check(before, doctor.CheckSSHKey); c.AutoFix != doctor.FixManagedKey {
		t.Fatalf("without a key ssh-key is %+v, want a managed-key fix", c)
	}

	bin := t.TempDir()
	aptLog := filepath.Join(t.TempDir(), "apt-get")
	fakeProgram(t, bin, "apt-get", aptLog, 0)
	t.Setenv("PATH", bin) // nothing else on PATH: every package check asks for its package

	app, out, errb = newApp()
	Run(context.Background(), []string{"doctor", "--fix", "--yes"}, app)
	for _, want := range []string{"Applying " + doctor.FixPackages, "Applying " + doctor.FixHostSetup, "Applying " + doctor.FixManagedKey, "After the fixes:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor --fix --yes printed no %q:\n%s\n%s", want, out, errb)
		}
	}
	if strings.Contains(errb.String(), "failed") {
		t.Errorf("a fix failed:\n%s", errb)
	}
	got, _ := os.ReadFile(aptLog)
	if diff := cmp.Diff("install -y debootstrap e2fsprogs iproute2 qemu-system-x86\n", string(got)); diff != "" {
		t.Errorf("apt-get was asked (-want +got):\n%s", diff)
	}

	after := report()
	for _, name := range []string{doctor.CheckTAPPool, doctor.CheckSSHKey, doctor.CheckBridge, doctor.CheckNAT} {
		if c := check(after, name); c.Status != api.CheckOK || c.AutoFix != "" {
			t.Errorf("after the fix %s is %+v, want ok with nothing left to fix", name, c)
		}
	}
	if _, err := sshkey.Inspect(keyPath); err != nil {
		t.Errorf("the managed key is not usable after the fix: %v", err)
	}
	links, _ = nl.LinkList()
	pool := 0
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "tap-pool-") {
			pool++
		}
	}
	if pool < removed {
		t.Errorf("%d pool TAPs after the fix, want at least the %d removed", pool, removed)
	}
}

// newTestNetns creates a namespace of the test's own (netnstest.New).
func newTestNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	ns, _ := netnstest.New(t, "", "creating a network namespace with a bridge, TAPs and nftables tables")
	return ns
}

// Under sudo, --fix sets up the host network for the user sudo was run
// by, asks no daemon (it would start a root one), and leaves the user's
// key to the user.
func TestDoctorFixUnderSudo(t *testing.T) {
	ns := newTestNetns(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody to stand for the sudo user: %v", err)
	}
	env := config.MapEnv(map[string]string{"BANGER_HOME": t.TempDir(), "HOME": t.TempDir(), "SUDO_USER": "nobody"})
	bin := t.TempDir()
	fakeProgram(t, bin, "apt-get", filepath.Join(t.TempDir(), "apt-get"), 0)
	t.Setenv("PATH", bin)
	var out, errb bytes.Buffer
	app := &App{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: env, UID: os.Getuid(),
		DaemonBin: "/nonexistent/bangerd", netNS: &ns}
	Run(context.Background(), []string{"doctor", "--fix", "--yes"}, app)
	for _, want := range []string{
		"TAP pool for nobody's bangerd",
		"skipped: the key belongs to nobody: run `banger doctor --fix` as nobody, without sudo",
		"Applying " + doctor.FixHostSetup,
		"not asked: under sudo",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor --fix --yes under sudo printed no %q:\n%s\n%s", want, out.String(), errb.String())
		}
	}
	if strings.Contains(out.String(), "Applying "+doctor.FixManagedKey) {
		t.Errorf("the key was made by root for nobody:\n%s", out.String())
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	taps := 0
	for _, l := range links {
		if tap, ok := l.(*netlink.Tuntap); ok && strings.HasPrefix(tap.Name, "tap-pool-") {
			taps++
			if got := strconv.Itoa(int(tap.Owner)); got != u.Uid {
				t.Errorf("%s is owned by uid %s, want nobody's %s", tap.Name, got, u.Uid)
			}
		}
	}
	if taps == 0 {
		t.Errorf("no pool TAPs after the fix:\n%s", out.String())
	}
}
