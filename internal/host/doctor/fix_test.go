package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/google/go-cmp/cmp"
)

// fixReport is a report of fakeHost h plus the network checks of in.
func fixReport(h *fakeHost, in *NetworkInputs) api.DoctorReport {
	rep := Run(context.Background(), h, Inputs{Config: testConfig(nil), ConfigFileFound: true})
	if in != nil {
		rep.Checks = append(rep.Checks, NetworkChecks(*in)...)
	}
	return rep
}

func TestPlanGolden(t *testing.T) {
	netCfg := hostnet.Config{Bridge: "banger0", Subnet: netip.MustParsePrefix("172.30.0.0/24"), PoolSize: 2, Table: "banger"}
	setUp := hostnet.State{Bridge: hostnet.BridgeState{Exists: true, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("172.30.0.1/24")}}}
	rules, antiSpoof := hostnet.Ruleset(netCfg), hostnet.AntiSpoof(netCfg)
	setUp.Table, setUp.AntiSpoof = &rules, &antiSpoof
	user := FixEnv{User: "alice", KeyPath: "/h/data/ssh/id_ed25519"}
	sudo := FixEnv{User: "alice", KeyPath: "/h/data/ssh/id_ed25519", IsRoot: true, Sudo: true}
	root := FixEnv{User: "root", KeyPath: "/h/data/ssh/id_ed25519", IsRoot: true}
	tests := []struct {
		name string
		rep  api.DoctorReport
		env  FixEnv
		ids  []string // the fixes planned, in order
		run  []string // those not blocked
	}{
		{"all-good", fixReport(goodHost(), &NetworkInputs{Config: netCfg, State: setUp, DaemonRoot: true}), user, nil, nil},
		{"bare-host-as-user", fixReport(&fakeHost{kvmErr: errors.New("open /dev/kvm: no such file or directory"),
			tunErr: &fs.PathError{Op: "open", Path: "/dev/net/tun", Err: fs.ErrNotExist}}, nil), user,
			[]string{FixPackages, FixManagedKey}, []string{FixManagedKey}},
		{"bare-host-under-sudo", fixReport(&fakeHost{kvmErr: errors.New("open /dev/kvm: no such file or directory")}, nil), sudo,
			[]string{FixPackages, FixManagedKey}, []string{FixPackages}},
		{"kvm-permission-denied", fixReport(func() *fakeHost {
			h := goodHost()
			h.files[kvmPath] = true
			h.kvmErr = errors.New("no permission to open /dev/kvm read-write: add your user to the kvm group (sudo usermod -aG kvm $USER) and log in again")
			h.kvmRWErr = &fs.PathError{Op: "open", Path: kvmPath, Err: fs.ErrPermission}
			return h
		}(), nil), sudo, []string{FixKVMGroup}, []string{FixKVMGroup}},
		{"rootless-network-missing", fixReport(goodHost(), &NetworkInputs{Config: netCfg}), user,
			[]string{FixHostSetup}, nil},
		{"rootless-tap-pool-removed", fixReport(goodHost(), &NetworkInputs{Config: netCfg, State: setUp}), sudo,
			[]string{FixHostSetup}, []string{FixHostSetup}},
		{"root-daemon-network-not-yet", fixReport(goodHost(), &NetworkInputs{Config: netCfg, DaemonRoot: true}), root, nil, nil},
		{"missing-key-as-root", fixReport(func() *fakeHost {
			h := goodHost()
			h.keys = nil
			return h
		}(), nil), root, []string{FixManagedKey}, []string{FixManagedKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fixes := Plan(tt.rep, tt.env)
			var ids, run []string
			for _, fx := range fixes {
				ids = append(ids, fx.ID)
				if fx.Blocked == "" {
					run = append(run, fx.ID)
				}
				if fx.NeedsRoot && !tt.env.IsRoot && !strings.Contains(fx.Blocked, "sudo banger doctor --fix") {
					t.Errorf("%s needs root but does not say `sudo banger doctor --fix`: %q", fx.ID, fx.Blocked)
				}
			}
			if diff := cmp.Diff(tt.ids, ids); diff != "" {
				t.Errorf("planned fixes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.run, run); diff != "" {
				t.Errorf("runnable fixes (-want +got):\n%s", diff)
			}
			var out bytes.Buffer
			if err := WritePlan(&out, tt.rep, fixes); err != nil {
				t.Fatal(err)
			}
			golden(t, "fix-"+tt.name+".txt", out.Bytes())
		})
	}
}

// The package fix installs exactly the packages the checks name, once
// each, and nothing when none is missing.
func TestPlanPackages(t *testing.T) {
	rep := api.DoctorReport{Checks: []api.Check{
		{Name: CheckQEMU, Status: api.CheckFail, AutoFix: FixPackagePrefix + "qemu-system-x86"},
		{Name: CheckIPRoute, Status: api.CheckOK},
		{Name: CheckE2fsprogs, Status: api.CheckFail, AutoFix: FixPackagePrefix + "e2fsprogs"},
		{Name: "again", Status: api.CheckWarn, AutoFix: FixPackagePrefix + "e2fsprogs"},
	}}
	fixes := Plan(rep, FixEnv{User: "u", IsRoot: true})
	if len(fixes) != 1 {
		t.Fatalf("planned %d fixes, want 1: %+v", len(fixes), fixes)
	}
	want := []string{"apt-get", "install", "-y", "e2fsprogs", "qemu-system-x86"}
	if diff := cmp.Diff(want, fixes[0].Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
}

// recordingFixer records what Apply asked of it.
type recordingFixer struct {
	calls []string
	err   error
}

func (f *recordingFixer) Run(_ context.Context, argv []string) error {
	f.calls = append(f.calls, "run "+strings.Join(argv, " "))
	return f.err
}
func (f *recordingFixer) HostSetup(_ context.Context, user string) error {
	f.calls = append(f.calls, "host-setup "+user)
	return f.err
}
func (f *recordingFixer) GenerateKey(path string) error {
	f.calls = append(f.calls, "generate-key "+path)
	return f.err
}

func TestApply(t *testing.T) {
	all := api.DoctorReport{Checks: []api.Check{
		{Name: CheckDebootstrap, Status: api.CheckWarn, AutoFix: FixPackagePrefix + "debootstrap"},
		{Name: CheckKVMDevice, Status: api.CheckFail, AutoFix: FixKVMGroup},
		{Name: CheckTAPPool, Status: api.CheckWarn, AutoFix: FixHostSetup},
		{Name: CheckSSHKey, Status: api.CheckOK, AutoFix: FixManagedKey},
	}}
	tests := []struct {
		name    string
		env     FixEnv
		failing error
		want    []string
		errs    []string // per fix, "" for none
	}{
		{"root applies everything", FixEnv{User: "alice", KeyPath: "/k", IsRoot: true},
			nil, []string{"run apt-get install -y debootstrap", "run usermod -aG kvm alice", "host-setup alice", "generate-key /k"},
			[]string{"", "", "", ""}},
		{"a user applies only the key", FixEnv{User: "alice", KeyPath: "/k"},
			nil, []string{"generate-key /k"},
			[]string{"sudo banger doctor --fix", "sudo banger doctor --fix", "sudo banger doctor --fix", ""}},
		{"a failing command is named", FixEnv{User: "alice", KeyPath: "/k", IsRoot: true},
			errors.New("exit status 100"), []string{"run apt-get install -y debootstrap", "run usermod -aG kvm alice", "host-setup alice", "generate-key /k"},
			[]string{"running apt-get install -y debootstrap: exit status 100", "running usermod -aG kvm alice: exit status 100", "exit status 100", "exit status 100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &recordingFixer{err: tt.failing}
			fixes := Plan(all, tt.env)
			if len(fixes) != len(tt.errs) {
				t.Fatalf("planned %d fixes, want %d", len(fixes), len(tt.errs))
			}
			for i, fx := range fixes {
				err := Apply(context.Background(), f, fx)
				got := ""
				if err != nil {
					got = err.Error()
				}
				if (tt.errs[i] == "") != (got == "") || !strings.Contains(got, tt.errs[i]) {
					t.Errorf("fix %s: error %q, want one containing %q", fx.ID, got, tt.errs[i])
				}
			}
			if diff := cmp.Diff(tt.want, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShellJoin(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{"ssh-keygen", "-N", "", "-f", "/a b/k"}, `ssh-keygen -N '' -f '/a b/k'`},
		{[]string{"echo", "it's"}, fmt.Sprintf("echo %s", `'it'\''s'`)},
	} {
		if got := shellJoin(tt.argv); got != tt.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tt.argv, got, tt.want)
		}
	}
}
