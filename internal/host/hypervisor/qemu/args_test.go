package qemu

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/host/hypervisor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func baseSpec() hypervisor.Spec {
	return hypervisor.Spec{
		ID:        "vm-0123",
		Name:      "quiet-otter",
		Dir:       "/run/banger/vms/vm-0123",
		VCPUs:     2,
		MemoryMiB: 1024,
		Boot: hypervisor.Boot{
			Vmlinux: "/var/lib/banger/kernels/6.1/vmlinux",
			Vmlinuz: "/var/lib/banger/kernels/6.1/vmlinuz",
			Initrd:  "/var/lib/banger/kernels/6.1/initrd.img",
			Cmdline: "root=/dev/vda ro banger.ip=10.42.0.7/24",
		},
		Disks: []hypervisor.Disk{
			{ID: "root", Path: "/var/lib/banger/vms/vm-0123/root.ext4", ReadOnly: true},
			{ID: "work", Path: "/var/lib/banger/vms/vm-0123/work.ext4"},
		},
		ConsoleLimit: 1 << 20,
	}
}

func withNIC(s hypervisor.Spec) hypervisor.Spec {
	s.NIC = &hypervisor.NIC{TAP: "tap-pool-3", MAC: "52:54:00:12:34:56"}
	return s
}

func TestArgsGolden(t *testing.T) {
	odd := baseSpec()
	odd.Dir = "/run/banger/vms/a,b"
	odd.VCPUs, odd.MemoryMiB = 0, 0
	odd.Boot.Initrd = ""
	odd.Disks = []hypervisor.Disk{{ID: "root disk!", Path: "/images/x,y.ext4"}}
	tests := []struct {
		name    string
		spec    hypervisor.Spec
		accel   string
		machine Machine
		agent   hypervisor.AgentTransport
		// passed: QEMU runs as the VM user, every file a descriptor.
		passed *Passed
	}{
		{"tcg-q35-serial", baseSpec(), AccelTCG, Q35, hypervisor.AgentSerial, nil},
		{"tcg-q35-nic-serial", withNIC(baseSpec()), AccelTCG, Q35, hypervisor.AgentSerial, nil},
		{"tcg-q35-nic-vsock", withNIC(baseSpec()), AccelTCG, Q35, hypervisor.AgentVsock, nil},
		{"kvm-microvm-nic-vsock", withNIC(baseSpec()), AccelKVM, Microvm, hypervisor.AgentVsock, nil},
		{"kvm-microvm-serial", baseSpec(), AccelKVM, Microvm, hypervisor.AgentSerial, nil},
		{"tcg-q35-escaping-defaults", odd, AccelTCG, Q35, hypervisor.AgentSerial, nil},
		{"vmuser-tcg-q35-nic-serial", withNIC(baseSpec()), AccelTCG, Q35, hypervisor.AgentSerial, &Passed{
			QMP: 3, Agent: 4, Console: 5, Kernel: 6, Initrd: 7,
			Disks: []DiskFDs{{RO: 8}, {RW: 9, RO: 10}}, TAP: 11,
		}},
		{"vmuser-kvm-microvm-nic-vsock", withNIC(baseSpec()), AccelKVM, Microvm, hypervisor.AgentVsock, &Passed{
			QMP: 3, Console: 4, Kernel: 5, Initrd: 6,
			Disks: []DiskFDs{{RO: 7}, {RW: 8, RO: 9}}, TAP: 10, VhostVsock: 11,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := Args(tt.spec, tt.accel, tt.machine, tt.agent)
			if tt.passed != nil {
				argv = ArgsPassed(tt.spec, tt.accel, tt.machine, tt.agent, *tt.passed)
			}
			got := strings.Join(argv, "\n") + "\n"
			golden := filepath.Join("testdata", "args", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Args (-golden +got):\n%s", diff)
			}
		})
	}
}

// argAfter returns the values that follow each occurrence of flag.
func argAfter(args []string, flag string) []string {
	var vs []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			vs = append(vs, args[i+1])
		}
	}
	return vs
}

func TestArgsProperties(t *testing.T) {
	tests := []struct {
		name       string
		spec       hypervisor.Spec
		accel      string
		machine    Machine
		agent      hypervisor.AgentTransport
		wantKernel string
		wantAppend string
		want       []string // args that must appear
		wantNot    []string // substrings no arg may contain ("-device,": no virtio-mmio device)
	}{
		{
			name: "q35 without NIC has no netdev", spec: baseSpec(), accel: AccelTCG, machine: Q35, agent: hypervisor.AgentSerial,
			wantKernel: "/var/lib/banger/kernels/6.1/vmlinuz",
			wantAppend: "console=ttyS0 reboot=k panic=-1 no_timer_check root=/dev/vda ro banger.ip=10.42.0.7/24",
			want: []string{"q35,accel=tcg", "max", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
				"virtio-blk-pci,drive=disk0,serial=root", "virtio-serial-pci,id=vser0",
				"virtserialport,bus=vser0.0,chardev=agent,name=banger.agent",
				"socket,id=agent,path=/run/banger/vms/vm-0123/agent.sock,server=on,wait=off",
				"unix:/run/banger/vms/vm-0123/qmp.sock,server=on,wait=off",
				"file,id=con,path=/run/banger/vms/vm-0123/console.log,append=on",
				"file=/var/lib/banger/vms/vm-0123/root.ext4,if=none,id=disk0,format=raw,cache=writeback,readonly=on"},
			wantNot: []string{"netdev", "vsock", "-device,"},
		},
		{
			name: "q35 with NIC has the tap netdev", spec: withNIC(baseSpec()), accel: AccelTCG, machine: Q35, agent: hypervisor.AgentSerial,
			wantKernel: "/var/lib/banger/kernels/6.1/vmlinuz",
			wantAppend: "console=ttyS0 reboot=k panic=-1 no_timer_check root=/dev/vda ro banger.ip=10.42.0.7/24",
			want: []string{"tap,id=net0,ifname=tap-pool-3,script=no,downscript=no,vhost=off",
				"virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"},
		},
		{
			name: "microvm with vsock", spec: withNIC(baseSpec()), accel: AccelKVM, machine: Microvm, agent: hypervisor.AgentVsock,
			wantKernel: "/var/lib/banger/kernels/6.1/vmlinux",
			wantAppend: "console=ttyS0 reboot=t panic=-1 root=/dev/vda ro banger.ip=10.42.0.7/24",
			want: []string{"microvm,accel=kvm,acpi=on", "host", "virtio-blk-device,drive=disk1,serial=work",
				"virtio-net-device,netdev=net0,mac=52:54:00:12:34:56",
				"vhost-vsock-device,guest-cid=" + strconv.FormatUint(uint64(CID("vm-0123")), 10)},
			wantNot: []string{"virtio-serial", "agent.sock", "-pci"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := Args(tt.spec, tt.accel, tt.machine, tt.agent)
			if got := argAfter(args, "-kernel"); !slices.Equal(got, []string{tt.wantKernel}) {
				t.Errorf("-kernel %v, want %s", got, tt.wantKernel)
			}
			if got := argAfter(args, "-append"); !slices.Equal(got, []string{tt.wantAppend}) {
				t.Errorf("-append %q, want %q", got, tt.wantAppend)
			}
			for _, w := range tt.want {
				if !slices.Contains(args, w) {
					t.Errorf("missing arg %q in %q", w, args)
				}
			}
			for _, n := range tt.wantNot {
				for _, a := range args {
					if strings.Contains(a, n) {
						t.Errorf("arg %q contains %q", a, n)
					}
				}
			}
		})
	}
}

func TestArgsDisksInOrder(t *testing.T) {
	s := baseSpec()
	s.Disks = append(s.Disks, hypervisor.Disk{ID: "extra", Path: "/x/extra.img"})
	drives := argAfter(Args(s, AccelTCG, Q35, hypervisor.AgentSerial), "-drive")
	var got []string
	for _, d := range drives {
		got = append(got, strings.TrimPrefix(strings.Split(d, ",")[0], "file="))
	}
	want := []string{s.Disks[0].Path, s.Disks[1].Path, "/x/extra.img"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("drive order (-want +got):\n%s", diff)
	}
}

func TestCID(t *testing.T) {
	seen := map[uint32]string{}
	for i := range 10000 {
		id := "vm-" + strconv.Itoa(i)
		c := CID(id)
		if c < 3 || c == 1<<32-1 {
			t.Fatalf("CID(%q) = %d, outside 3..2^32-2", id, c)
		}
		if c != CID(id) {
			t.Fatalf("CID(%q) is not stable", id)
		}
		if other, ok := seen[c]; ok {
			t.Errorf("CID(%q) = CID(%q) = %d", id, other, c)
		}
		seen[c] = id
	}
}

// A read-only disk is readonly=on without discard, and with passed
// descriptors its fd set holds only the read-only descriptor, so QEMU
// cannot reopen it for writing; a writable disk keeps discard=unmap and
// both descriptors.
func TestArgsReadOnlyDisk(t *testing.T) {
	spec := baseSpec()
	fds := Passed{QMP: 3, Agent: 4, Console: 5, Kernel: 6, Initrd: 7, Disks: []DiskFDs{{RO: 8}, {RW: 9, RO: 10}}}
	tests := []struct {
		name      string
		argv      []string
		wantDrive []string
		wantAddFD []string
	}{
		{"paths", Args(spec, AccelTCG, Q35, hypervisor.AgentSerial),
			[]string{
				"file=/var/lib/banger/vms/vm-0123/root.ext4,if=none,id=disk0,format=raw,cache=writeback,readonly=on",
				"file=/var/lib/banger/vms/vm-0123/work.ext4,if=none,id=disk1,format=raw,cache=writeback,discard=unmap",
			}, nil},
		{"passed descriptors", ArgsPassed(spec, AccelTCG, Q35, hypervisor.AgentSerial, fds),
			[]string{
				"file=/dev/fdset/8,if=none,id=disk0,format=raw,cache=writeback,readonly=on",
				"file=/dev/fdset/9,if=none,id=disk1,format=raw,cache=writeback,discard=unmap",
			},
			[]string{"fd=5,set=5", "fd=8,set=8", "fd=9,set=9", "fd=10,set=9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.wantDrive, argAfter(tt.argv, "-drive")); diff != "" {
				t.Errorf("-drive (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantAddFD, argAfter(tt.argv, "-add-fd")); diff != "" {
				t.Errorf("-add-fd (-want +got):\n%s", diff)
			}
		})
	}
}
