package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestReplaceField(t *testing.T) {
	tests := []struct {
		name, msg, field, flag, want string
	}{
		{"leading", "vcpus 40 is out of range: use 1..64", "vcpus", "--vcpus",
			"--vcpus 40 is out of range: use 1..64"},
		{"after a wrapping prefix", "creating vm: memory_mib 64MiB is out of range", "memory_mib", "--memory",
			"creating vm: --memory 64MiB is out of range"},
		{"followed by a colon", "presets: \"gui\" is unknown: use agents", "presets", "--preset",
			"--preset: \"gui\" is unknown: use agents"},
		{"at the end", "free space in /srv or lower disk_bytes", "disk_bytes", "--disk",
			"free space in /srv or lower --disk"},
		{"before closing punctuation", "pick another name, or delete it", "name", "--name",
			"pick another --name, or delete it"},
		{"in parentheses", "(name) is taken", "name", "--name", "(--name) is taken"},
		{"only the first use", "modules is required: from lib/modules/<release> banger builds the virtio modules", "modules", "--modules",
			"--modules is required: from lib/modules/<release> banger builds the virtio modules"},
		{"not inside a longer word", "a vm named \"x\" already exists: pick another name", "name", "--name",
			"a vm named \"x\" already exists: pick another --name"},
		{"not inside a path", "kernel /boot/kernel/vmlinuz: no such file", "kernel", "--kernel",
			"--kernel /boot/kernel/vmlinuz: no such file"},
		{"not before a dot inside a word", "no kernel/ or modules.builtin inside; modules missing", "modules", "--modules",
			"no kernel/ or modules.builtin inside; --modules missing"},
		{"not inside a quoted value", `invalid name "name x": it contains ' '`, "name", "--name",
			`invalid --name "name x": it contains ' '`},
		{"not inside an escaped quoted value", `env entry "a \"env\" b" is not KEY=VALUE; env`, "env", "--env",
			`--env entry "a \"env\" b" is not KEY=VALUE; env`},
		{"not inside a command", "see `banger image list` for an image", "image", "--image",
			"see `banger image list` for an --image"},
		{"absent: the flag is added", "nothing to build", "presets", "--preset", "nothing to build (--preset)"},
		{"a workspace mode", "/src/x is not a git work tree (no .git in it or above it): run `git init` there, or use mode full_copy to copy the directory as it is", "mode", "--mode",
			"/src/x is not a git work tree (no .git in it or above it): run `git init` there, or use --mode full_copy to copy the directory as it is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceField(tt.msg, tt.field, tt.flag); got != tt.want {
				t.Errorf("replaceField(%q, %q, %q)\n got %q\nwant %q", tt.msg, tt.field, tt.flag, got, tt.want)
			}
		})
	}
}

// TestFieldFlagsExist: every command in the table exists under that path
// and has every flag the table names, and each of those commands' request
// fields is either mapped or set from the command's arguments.
func TestFieldFlagsExist(t *testing.T) {
	root := newRootCmd(&App{})
	for path, flags := range fieldFlags {
		c, _, err := root.Find(strings.Fields(path))
		if err != nil || c.CommandPath() != "banger "+path {
			t.Errorf("%q: no such command (found %v, %v)", path, c.CommandPath(), err)
			continue
		}
		for field, fl := range flags {
			if c.Flags().Lookup(strings.TrimPrefix(fl, "--")) == nil {
				t.Errorf("%s: the field %s maps to %s, which the command does not have", path, field, fl)
			}
		}
	}
	// The request each command sends, and its fields that come from
	// arguments or from other flags, not from a flag of their own.
	requests := []struct {
		path     string
		req      any
		fromArgs []string
	}{
		{"vm create", api.CreateVMRequest{}, nil},
		{"vm run", api.CreateVMRequest{}, nil},
		{"image register", api.RegisterImageRequest{}, nil},
		{"image bootstrap", api.BootstrapImageRequest{}, []string{"distro"}},
		{"image build", api.BuildImageRequest{}, []string{"script_name"}}, // the --script file's name
		{"vm session start", api.StartSessionRequest{}, []string{"argv", "rows", "cols"}},
		{"vm exec", api.ExecRequest{}, []string{"argv", "rows", "cols"}},
		{"doctor", api.DeepDoctorRequest{}, nil},
	}
	for _, r := range requests {
		for _, field := range jsonFields(reflect.TypeOf(r.req)) {
			if _, ok := fieldFlags[r.path][field]; !ok && !contains(r.fromArgs, field) {
				t.Errorf("%s: request field %s has no flag in fieldFlags", r.path, field)
			}
		}
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestWithFlagNames: only an *api.Error with a Field the command maps is
// rewritten, and the result still unwraps to the daemon's error.
func TestWithFlagNames(t *testing.T) {
	root := newRootCmd(&App{})
	create, _, _ := root.Find([]string{"vm", "create"})
	list, _, _ := root.Find([]string{"vm", "list"})
	field := api.FieldErrorf("vcpus", "1..64", "vcpus 500 is out of range: use 1..64")
	wrapped := fmt.Errorf("vm run: %w", field)
	plain := api.Errorf(api.CodeNotFound, "no vm named \"vcpus\"")

	if got := withFlagNames(create, wrapped); got.Error() != "vm run: --vcpus 500 is out of range: use 1..64" {
		t.Errorf("wrapped field error: %q", got)
	} else if !errors.Is(got, api.ErrInvalidArgument) {
		t.Errorf("%v no longer matches api.ErrInvalidArgument", got)
	}
	if got := withFlagNames(list, field); got != error(field) {
		t.Errorf("a command without that flag rewrote %q to %q", field, got)
	}
	if got := withFlagNames(create, plain); got != error(plain) {
		t.Errorf("an error without a field was rewritten to %q", got)
	}
	if got := withFlagNames(create, nil); got != nil {
		t.Errorf("nil became %v", got)
	}
}

// TestCLIPrintsTheFlag runs banger against a real bangerd (fake
// hypervisor): a refused request is printed as one line naming the
// flag the user typed. The lines are kept in testdata/field-errors.golden
// (go test -run TestCLIPrintsTheFlag -update rewrites it).
func TestCLIPrintsTheFlag(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.CreateVM(t, api.CreateVMRequest{Name: "taken"})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := config.MapEnv(map[string]string{config.EnvHome: d.Root, "HOME": filepath.Join(d.Root, "home")})
	text := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(text, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string // the flag the line must begin with, or contain
	}{
		{[]string{"vm", "create", "--vcpus", "500"}, "--vcpus 500 is out of range"},
		{[]string{"vm", "create", "--memory", "64MiB"}, "--memory 64MiB is out of range"},
		{[]string{"vm", "create", "--disk", "100MiB"}, "--disk 100MiB is out of range"},
		{[]string{"vm", "create", "--hypervisor", "vmware"}, `--hypervisor "vmware" is unknown`},
		{[]string{"vm", "create", "--name", "Not_OK"}, `invalid --name "Not_OK"`},
		{[]string{"vm", "create", "--name", "taken"}, "pick another --name"},
		{[]string{"vm", "create", "--image", "nope"}, `--image "nope" does not exist`},
		{[]string{"image", "register", "--name", "x", "--kernel", "/nonexistent/vmlinuz", "--rootfs", text, "--modules", "/lib/modules"}, "--kernel /nonexistent/vmlinuz"},
		{[]string{"image", "register", "--name", "x", "--kernel", text}, "--kernel " + text},
		{[]string{"image", "bootstrap", "debian", "--suite", "../etc"}, `--suite "../etc" is not a Debian suite name`},
		{[]string{"image", "bootstrap", "debian", "--name", "Bad_Name"}, `invalid --name "Bad_Name"`},
		{[]string{"image", "bootstrap", "arch"}, `distro "arch" cannot be bootstrapped`},
		{[]string{"image", "build", "--from", "nope", "--name", "dev", "--packages", "git"}, `--from "nope" is not an image`},
		{[]string{"image", "build", "--from", "base", "--name", "dev", "--preset", "gui"}, `--preset: "gui" is unknown`},
		{[]string{"image", "build", "--from", "base", "--name", "dev", "--packages", "git;reboot"}, `--packages: "git;reboot"`},
		{[]string{"image", "rm", "base"}, "or remove it with --force"},
		{[]string{"vm", "session", "start", "taken", "--env", "PATH", "--", "true"}, `--env entry "PATH"`},
		{[]string{"doctor", "--deep", "--probe-timeout", "11m"}, "--probe-timeout 11m0s is out of range"},
	}
	var golden strings.Builder
	for _, c := range cases {
		var out, errb bytes.Buffer
		app := &App{Stdout: &out, Stderr: &errb, Env: env, UID: os.Getuid(), DaemonBin: self}
		code := Run(context.Background(), c.args, app)
		fmt.Fprintf(&golden, "banger %s\n\t%s", strings.ReplaceAll(strings.Join(c.args, " "), filepath.Dir(text), "$DIR"),
			strings.ReplaceAll(errb.String(), filepath.Dir(text), "$DIR"))
		if code == ExitOK || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("banger %s: exit %d, stderr %q; want one line containing %q", strings.Join(c.args, " "), code, errb.String(), c.want)
		}
	}
	goldenFile(t, "field-errors.golden", golden.String())

	// A field error met inside the create operation (its disk would not
	// fit on this filesystem) names the flag too. Not in the golden file:
	// it quotes the free space.
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.Root, &st); err != nil || st.Bavail*uint64(st.Bsize) >= 4<<40 {
		t.Skipf("%s: 4TiB may fit here (%v): no create fails on its disk", d.Root, err)
	}
	var out, errb bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errb, Env: env, UID: os.Getuid(), DaemonBin: self}
	if code := Run(context.Background(), []string{"vm", "create", "--disk", "4TiB"}, app); code == ExitOK ||
		!strings.Contains(errb.String(), "banger: not enough free disk space for this VM") || !strings.HasSuffix(errb.String(), "or lower --disk\n") {
		t.Errorf("vm create --disk 4TiB: exit %d, stderr %q; want the space error ending in --disk", code, errb.String())
	}
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestCLIPrintsTheFlag -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}
