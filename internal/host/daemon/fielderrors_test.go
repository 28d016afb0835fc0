package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/names"
)

// TestFieldErrorsCrossTheSocket sends bad requests through the typed
// client to a real daemon (fake hypervisor). Each must come back as an
// *api.Error naming the request field at fault by its JSON name (Field),
// saying what it accepts (Allowed), in a message that begins with or
// contains that name and no CLI flag: a TUI or web form shows it next to
// its own field, the CLI maps the name to its flag.
func TestFieldErrorsCrossTheSocket(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	cl := d.Client
	ctx := context.Background()
	d.CreateVM(t, api.CreateVMRequest{Name: "taken"})

	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	create := func(r api.CreateVMRequest) func() error {
		return func() error { _, err := cl.BeginCreateVM(ctx, r); return err }
	}
	register := func(r api.RegisterImageRequest) func() error {
		return func() error {
			if r.Name == "" {
				r.Name = "fresh"
			}
			_, err := cl.BeginRegisterImage(ctx, r)
			return err
		}
	}
	bootstrap := func(r api.BootstrapImageRequest) func() error {
		return func() error { _, err := cl.BeginBootstrapImage(ctx, r); return err }
	}
	build := func(r api.BuildImageRequest) func() error {
		return func() error { _, err := cl.BeginBuildImage(ctx, r); return err }
	}
	const pathKernel = "an absolute path to a bzImage (vmlinuz) or an x86-64 ELF vmlinux"
	tests := []struct {
		name           string
		call           func() error
		code           api.Code
		field, allowed string
		msg            string // the message begins with this
	}{
		{"vcpus", create(api.CreateVMRequest{VCPUs: 500}), api.CodeInvalidArgument,
			"vcpus", "1..64", "vcpus 500 is out of range: use 1..64"},
		{"memory", create(api.CreateVMRequest{MemoryMiB: 64}), api.CodeInvalidArgument,
			"memory_mib", "256MiB..256GiB", "memory_mib 64MiB is out of range: use 256MiB..256GiB"},
		{"disk", create(api.CreateVMRequest{DiskBytes: 100 << 20}), api.CodeInvalidArgument,
			"disk_bytes", "1GiB..4TiB", "disk_bytes 100MiB is out of range: use 1GiB..4TiB"},
		{"disk not whole MiB", create(api.CreateVMRequest{DiskBytes: 2<<30 + 512}), api.CodeInvalidArgument,
			"disk_bytes", "1GiB..4TiB, whole MiB", "disk_bytes 2147484160 is not a whole number of MiB"},
		{"hypervisor", create(api.CreateVMRequest{Hypervisor: "vmware"}), api.CodeInvalidArgument,
			"hypervisor", "qemu, firecracker", `hypervisor "vmware" is unknown: use qemu or firecracker`},
		{"vm name", create(api.CreateVMRequest{Name: "Not_OK"}), api.CodeInvalidArgument,
			"name", names.Rule, `invalid name "Not_OK"`},
		{"vm name taken", create(api.CreateVMRequest{Name: "taken"}), api.CodeAlreadyExists,
			"name", "a name no other VM has", `a vm named "taken" already exists: pick another name`},
		{"vm image", create(api.CreateVMRequest{Image: "nope"}), api.CodeNotFound,
			"image", "an image name or id", `image "nope" does not exist`},

		{"register kernel", register(api.RegisterImageRequest{Kernel: "/nonexistent/vmlinuz"}), api.CodeInvalidArgument,
			"kernel", pathKernel, "kernel /nonexistent/vmlinuz: no such file"},
		{"register relative kernel", register(api.RegisterImageRequest{Kernel: "vmlinuz"}), api.CodeInvalidArgument,
			"kernel", pathKernel, "kernel vmlinuz: not an absolute path"},
		{"register kernel missing", register(api.RegisterImageRequest{}), api.CodeInvalidArgument,
			"kernel", pathKernel, "kernel is required"},
		{"register name", register(api.RegisterImageRequest{Name: "My_Image"}), api.CodeInvalidArgument,
			"name", names.Rule, `invalid name "My_Image"`},
		{"register name taken", register(api.RegisterImageRequest{Name: daemontest.FakeImage}), api.CodeAlreadyExists,
			"name", "a name no other image has", `an image named "base" already exists: pick another name`},
		{"register text kernel", register(api.RegisterImageRequest{Kernel: text}), api.CodeInvalidArgument,
			"kernel", pathKernel, "kernel " + text + ": neither an ELF vmlinux nor an x86 bzImage"},

		{"bootstrap distro", bootstrap(api.BootstrapImageRequest{Distro: "arch"}), api.CodeInvalidArgument,
			"distro", "debian", `distro "arch" cannot be bootstrapped`},
		{"bootstrap suite", bootstrap(api.BootstrapImageRequest{Distro: "debian", Suite: "../etc"}), api.CodeInvalidArgument,
			"suite", "a Debian suite name, e.g. bookworm or trixie", `suite "../etc" is not a Debian suite name`},
		{"bootstrap name", bootstrap(api.BootstrapImageRequest{Distro: "debian", Name: "Base Image"}), api.CodeInvalidArgument,
			"name", names.Rule, `invalid name "Base Image"`},
		{"bootstrap name taken", bootstrap(api.BootstrapImageRequest{Distro: "debian", Name: daemontest.FakeImage}), api.CodeAlreadyExists,
			"name", "a name no other image has", `an image named "base" already exists`},

		{"build from", build(api.BuildImageRequest{From: "nope", Name: "dev", Packages: []string{"git"}}), api.CodeNotFound,
			"from", "the name or id of a ready image", `from "nope" is not an image`},
		{"build from missing", build(api.BuildImageRequest{Name: "dev", Packages: []string{"git"}}), api.CodeInvalidArgument,
			"from", "the name or id of a ready image", "from is required"},
		{"build preset", build(api.BuildImageRequest{From: "base", Name: "dev", Presets: []string{"gui"}}), api.CodeInvalidArgument,
			"presets", "agents", `presets: "gui" is unknown: use agents`},
		{"build package", build(api.BuildImageRequest{From: "base", Name: "dev", Packages: []string{"git;reboot"}}), api.CodeInvalidArgument,
			"packages", "Debian package names (optionally :arch and =version)", `packages: "git;reboot" is not a Debian package name`},
		{"build name", build(api.BuildImageRequest{From: "base", Name: "Dev", Packages: []string{"git"}}), api.CodeInvalidArgument,
			"name", names.Rule, `invalid name "Dev"`},
		{"build name taken", build(api.BuildImageRequest{From: "base", Name: "base", Packages: []string{"git"}}), api.CodeAlreadyExists,
			"name", "a name no other image has", `an image named "base" already exists`},
		// Three fields together, none at fault alone: no Field.
		{"build nothing", build(api.BuildImageRequest{From: "base", Name: "dev"}), api.CodeInvalidArgument,
			"", "", "nothing to build: give presets, packages or a script"},

		{"image in use", func() error { return cl.RemoveImage(ctx, daemontest.FakeImage, false) }, api.CodeFailedPrecondition,
			"force", "true", "image base is used by [taken]: delete those first, or remove it with force"},
		{"session env", func() error {
			_, err := cl.StartSession(ctx, "taken", api.StartSessionRequest{Argv: []string{"true"}, Env: []string{"PATH"}})
			return err
		}, api.CodeInvalidArgument, "env", "KEY=VALUE entries", `env entry "PATH" is not KEY=VALUE`},
		{"session argv", func() error {
			_, err := cl.StartSession(ctx, "taken", api.StartSessionRequest{})
			return err
		}, api.CodeInvalidArgument, "argv", "a command and its arguments", "argv is empty"},
		{"copy in to a relative path", func() error {
			_, err := cl.CopyIn(ctx, "taken", "tmp/x", strings.NewReader(""))
			return err
		}, api.CodeInvalidArgument, "path", "an absolute guest path, e.g. /root/repo", `path "tmp/x" is not absolute`},
		{"workspace at a relative dir", func() error {
			_, err := cl.PrepareWorkspace(ctx, "taken", api.PrepareWorkspaceRequest{Dir: "repo"}, strings.NewReader(""))
			return err
		}, api.CodeInvalidArgument, "dir", "an absolute guest path, e.g. /root/repo", `dir "repo" is not absolute`},
		{"workspace in an unknown mode", func() error {
			_, err := cl.PrepareWorkspace(ctx, "taken", api.PrepareWorkspaceRequest{Mode: "rsync"}, strings.NewReader(""))
			return err
		}, api.CodeInvalidArgument, "mode", "git, full_copy", `mode "rsync" is not a workspace mode`},
		{"workspace with a short sent commit", func() error {
			_, err := cl.PrepareWorkspace(ctx, "taken", api.PrepareWorkspaceRequest{Mode: "git", Sent: "abc123"}, strings.NewReader(""))
			return err
		}, api.CodeInvalidArgument, "sent", "a full commit id (40 or 64 hex digits)", `sent "abc123" is not a full commit id`},
		{"workspace with a relative host path", func() error {
			_, err := cl.PrepareWorkspace(ctx, "taken", api.PrepareWorkspaceRequest{HostPath: "src/x"}, strings.NewReader(""))
			return err
		}, api.CodeInvalidArgument, "host_path", "an absolute host path", `host_path "src/x" is not an absolute path`},
		{"workspace diff with an empty pathspec", func() error {
			_, err := cl.WorkspaceDiff(ctx, "taken", "")
			return err
		}, api.CodeInvalidArgument, "path", "git pathspecs, e.g. src/ or '*.go'", `pathspec "" is empty`},
		{"deep doctor timeout", func() error {
			_, err := cl.BeginDeepDoctor(ctx, api.DeepDoctorRequest{ProbeTimeout: api.Duration(11 * time.Minute)})
			return err
		}, api.CodeInvalidArgument, "probe_timeout_ms", "1ms..10m", "probe_timeout_ms 11m0s is out of range: use 1ms..10m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ae *api.Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %T %v, want an *api.Error", err, err)
			}
			if ae.Code != tt.code || ae.Field != tt.field || ae.Allowed != tt.allowed {
				t.Errorf("got %s field=%q allowed=%q, want %s field=%q allowed=%q (%q)",
					ae.Code, ae.Field, ae.Allowed, tt.code, tt.field, tt.allowed, ae.Message)
			}
			if !strings.HasPrefix(ae.Message, tt.msg) {
				t.Errorf("message %q does not begin with %q", ae.Message, tt.msg)
			}
			if strings.Contains(ae.Message, "--") {
				t.Errorf("message %q names a CLI flag; name the request field instead", ae.Message)
			}
		})
	}
	// A field error met inside an operation (a disk the filesystem could
	// not back) is the failed operation's error, Field and Allowed
	// included, both live and once the operation is only a stored record.
	if free := freeBytes(t, d.Root); free >= 4<<40 {
		t.Skipf("%s has %d bytes free: a 4TiB disk would fit, so no create fails on it here", d.Root, free)
	}
	op, err := cl.BeginCreateVM(ctx, api.CreateVMRequest{DiskBytes: 4 << 40})
	if err != nil {
		t.Fatal(err)
	}
	final, err := cl.WatchOperation(ctx, op.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := cl.Operation(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]api.Operation{"followed": final, "read back": stored} {
		if o.State != api.OperationFailed || o.Error == nil || o.Error.Code != api.CodeFailedPrecondition ||
			o.Error.Field != "disk_bytes" || !strings.Contains(o.Error.Message, "or lower disk_bytes") {
			t.Errorf("%s: operation %s error %+v, want failed_precondition about disk_bytes", name, o.State, o.Error)
		}
	}
	d.Restart(t) // the daemon now answers from the store alone
	if o, err := d.Client.Operation(ctx, op.ID); err != nil || o.Error == nil || o.Error.Field != "disk_bytes" {
		t.Errorf("after a restart: %+v %v, want the error about disk_bytes", o.Error, err)
	}
	cl = d.Client

	if vms, err := cl.VMs(ctx); err != nil || len(vms) != 1 {
		t.Errorf("bad requests changed the VMs: %v %v", vms, err)
	}
	if imgs, err := cl.Images(ctx); err != nil || len(imgs) != 1 {
		t.Errorf("bad requests changed the images: %v %v", imgs, err)
	}
}

// freeBytes is what an unprivileged writer may still use on dir's
// filesystem.
func freeBytes(t *testing.T, dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}
