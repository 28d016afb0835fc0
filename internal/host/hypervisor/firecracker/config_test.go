package firecracker

import (
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"
)

func TestBootArgs(t *testing.T) {
	tests := []struct {
		cmdline string
		v       *semver.Version
		want    string
	}{
		{"root=/dev/vda ro", semver.New(1, 13, 0, "", ""), "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd root=/dev/vda ro"},
		{"root=/dev/vda ro", semver.New(1, 12, 1, "", ""), "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd pci=off root=/dev/vda ro"},
		{"root=/dev/vda ro", semver.New(1, 13, 0, "dev", ""), "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd pci=off root=/dev/vda ro"},
		{"  ", semver.New(1, 16, 1, "", ""), "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.dumbkbd"},
	}
	for _, tt := range tests {
		if got := BootArgs(tt.cmdline, tt.v); got != tt.want {
			t.Errorf("BootArgs(%q, %v) = %q, want %q", tt.cmdline, tt.v, got, tt.want)
		}
	}
}

// The launch sequence, step by step, without a NIC: what each step is
// called in errors.
func TestLaunchCallSteps(t *testing.T) {
	spec := jailSpec()
	fp := fcPaths{Log: "l", Metrics: "m", Kernel: "k", Vsock: "v", Disks: []string{"r", "w"}}
	var got []string
	for _, c := range launchCalls(spec, fp, semver.New(1, 4, 0, "", "")) {
		got = append(got, c.Step+": "+c.Method+" "+c.Path)
	}
	want := []string{
		"configuring the logger: PUT /logger",
		"configuring metrics: PUT /metrics",
		"configuring the machine: PUT /machine-config",
		"configuring the boot source: PUT /boot-source",
		"configuring drives: PUT /drives/root",
		"configuring drives: PUT /drives/work",
		"configuring vsock: PUT /vsock",
		"configuring the entropy device: PUT /entropy",
		"starting the microVM: PUT /actions",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}
