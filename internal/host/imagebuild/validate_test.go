package imagebuild

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/image"
	"github.com/bangerdev/banger/internal/host/names"
	"github.com/bangerdev/banger/internal/host/provision"
	"github.com/bangerdev/banger/internal/host/store"
)

// testBuilder returns a builder over a real store holding three images:
// "base" (ready, glibc), "alpine" (ready, musl) and "linked" (unmanaged).
func testBuilder(t *testing.T) *Builder {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, img := range []struct {
		id, name, state string
		man             image.Manifest
	}{
		{"img-base", "base", api.ImageReady, image.Manifest{Schema: 1, Distro: "debian", Suite: "bookworm", Libc: "glibc"}},
		{"img-alpine", "alpine", api.ImageReady, image.Manifest{Schema: 1, Distro: "alpine", Libc: "musl"}},
		{"img-linked", "linked", api.ImageUnmanaged, image.Manifest{Schema: 1, Distro: "debian", Libc: "glibc"}},
	} {
		m, err := json.Marshal(img.man)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateImage(ctx, store.Image{ID: img.id, Name: img.name, State: img.state, Distro: img.man.Distro, Manifest: string(m)}); err != nil {
			t.Fatal(err)
		}
	}
	return &Builder{
		Catalog:  &image.Catalog{Root: filepath.Join(dir, "images"), Store: st},
		CacheDir: filepath.Join(dir, "cache"),
	}
}

// TestValidateBuild: every way a build request can be wrong is answered
// before an operation starts, with the code a script can switch on, a
// message naming the API field (never a CLI flag: the web UI and scripts
// send no flags) and the next action.
func TestValidateBuild(t *testing.T) {
	b := testBuilder(t)
	ok := api.BuildImageRequest{From: "base", Name: "dev", Packages: []string{"git", "build-essential", "libc6:amd64", "g++"}}
	with := func(f func(r *api.BuildImageRequest)) api.BuildImageRequest {
		r := ok
		f(&r)
		return r
	}
	tests := []struct {
		name    string
		req     api.BuildImageRequest
		code    api.Code // "" for a valid request
		field   string   // the api.Error's Field
		allowed string   // and its Allowed
		msg     []string
	}{
		{"valid packages", ok, "", "", "", nil},
		{"valid script only", api.BuildImageRequest{From: "base", Name: "dev", Script: "echo hi\n"}, "", "", "", nil},
		{"valid preset by id of the parent", api.BuildImageRequest{From: "img-base", Name: "dev", Presets: []string{"agents"}}, "", "", "", nil},
		{"missing parent", with(func(r *api.BuildImageRequest) { r.From = "nope" }),
			api.CodeNotFound, "from", AllowedFrom, []string{`from "nope" is not an image`, "`banger image list`"}},
		{"empty parent", with(func(r *api.BuildImageRequest) { r.From = "" }),
			api.CodeInvalidArgument, "from", AllowedFrom, []string{"from is required"}},
		{"unmanaged parent", with(func(r *api.BuildImageRequest) { r.From = "linked" }),
			api.CodeFailedPrecondition, "from", AllowedFrom, []string{"from linked is unmanaged", "`banger image promote linked`"}},
		{"bad name", with(func(r *api.BuildImageRequest) { r.Name = "Dev_Box" }),
			api.CodeInvalidArgument, "name", names.Rule, []string{`invalid name "Dev_Box"`}},
		{"empty name", with(func(r *api.BuildImageRequest) { r.Name = "" }),
			api.CodeInvalidArgument, "name", names.Rule, []string{"invalid name", "empty"}},
		{"name taken", with(func(r *api.BuildImageRequest) { r.Name = "base" }),
			api.CodeAlreadyExists, "name", "a name no other image has", []string{`an image named "base" already exists: pick another name`, "banger image rm base"}},
		{"unknown preset", with(func(r *api.BuildImageRequest) { r.Presets = []string{"agents", "gui"} }),
			api.CodeInvalidArgument, "presets", "agents", []string{`presets: "gui" is unknown: use agents`}},
		{"agents preset on musl", api.BuildImageRequest{From: "alpine", Name: "dev", Presets: []string{"agents"}},
			api.CodeFailedPrecondition, "presets", "", []string{"presets: agents needs a glibc image", "alpine is musl"}},
		{"empty package", with(func(r *api.BuildImageRequest) { r.Packages = []string{"git", ""} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: ", `"" is not a Debian package name`}},
		{"package with a shell metacharacter", with(func(r *api.BuildImageRequest) { r.Packages = []string{"git;reboot"} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: ", `"git;reboot" is not a Debian package name`}},
		{"package with a space", with(func(r *api.BuildImageRequest) { r.Packages = []string{"git curl"} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: "}},
		{"package with a quote", with(func(r *api.BuildImageRequest) { r.Packages = []string{`a"b`} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: "}},
		{"package with command substitution", with(func(r *api.BuildImageRequest) { r.Packages = []string{"$(id)"} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: "}},
		{"package read as an apt option", with(func(r *api.BuildImageRequest) { r.Packages = []string{"-oAPT::Get::AllowUnauthenticated=true"} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: ", "is not a Debian package name"}},
		{"package in upper case", with(func(r *api.BuildImageRequest) { r.Packages = []string{"Git"} }),
			api.CodeInvalidArgument, "packages", AllowedPackages, []string{"packages: ", `"Git"`}},
		{"package with version and arch", with(func(r *api.BuildImageRequest) { r.Packages = []string{"git:amd64=1:2.39.5-0+deb12u1"} }), "", "", "", nil},
		{"script over the limit", with(func(r *api.BuildImageRequest) { r.Script = strings.Repeat("#", maxScript+1) }),
			api.CodeInvalidArgument, "script", AllowedScript, []string{"script is 1048577 bytes", "the limit is 1048576"}},
		{"script at the limit", api.BuildImageRequest{From: "base", Name: "dev", Script: strings.Repeat("#", maxScript)}, "", "", "", nil},
		{"nothing to build", api.BuildImageRequest{From: "base", Name: "dev"},
			api.CodeInvalidArgument, "", "", []string{"nothing to build", "presets", "packages", "script"}},
		{"a bad request is refused before its parent is looked up", api.BuildImageRequest{From: "nope", Name: "dev", Presets: []string{"gui"}},
			api.CodeInvalidArgument, "presets", "agents", []string{`"gui" is unknown`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, err := b.ValidateBuild(context.Background(), tt.req)
			want := tt.code
			if want == "" && os.Geteuid() != 0 {
				// A valid request still needs root to build.
				want, tt.msg = api.CodeFailedPrecondition, []string{"image build needs root"}
			}
			if want == "" {
				if err != nil {
					t.Fatalf("ValidateBuild: %v", err)
				}
				if parent.Name != strings.TrimPrefix(tt.req.From, "img-") && parent.ID != tt.req.From {
					t.Errorf("parent %s (%s), want the image %q", parent.Name, parent.ID, tt.req.From)
				}
				return
			}
			if !errors.Is(err, &api.Error{Code: want}) {
				t.Fatalf("got %v, want code %s", err, want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not contain %q", err, m)
				}
			}
			var ae *api.Error
			errors.As(err, &ae)
			if want == tt.code && (ae.Field != tt.field || ae.Allowed != tt.allowed) {
				t.Errorf("field=%q allowed=%q, want field=%q allowed=%q", ae.Field, ae.Allowed, tt.field, tt.allowed)
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("message %q names a CLI flag; name the API field instead", err)
			}
		})
	}
}

// TestValidateBootstrap: the distro and suite are checked and the
// defaults filled in before root and debootstrap are looked at, so a
// request's mistakes are reported the same on any host.
func TestValidateBootstrap(t *testing.T) {
	b := testBuilder(t)
	tests := []struct {
		name     string
		req      api.BootstrapImageRequest
		wantReq  api.BootstrapImageRequest // after defaults
		code     api.Code                  // "" when only the host may refuse
		msg      []string
		hostOnly bool
	}{
		{"defaults", api.BootstrapImageRequest{Distro: "debian"},
			api.BootstrapImageRequest{Distro: "debian", Suite: "bookworm", Name: "debian-bookworm"}, "", nil, true},
		{"suite names the default image", api.BootstrapImageRequest{Distro: "debian", Suite: "trixie"},
			api.BootstrapImageRequest{Distro: "debian", Suite: "trixie", Name: "debian-trixie"}, "", nil, true},
		{"another distro", api.BootstrapImageRequest{Distro: "arch"},
			api.BootstrapImageRequest{Distro: "arch"}, api.CodeInvalidArgument,
			[]string{`distro "arch" cannot be bootstrapped`, "`banger image register`"}, false},
		{"no distro", api.BootstrapImageRequest{},
			api.BootstrapImageRequest{}, api.CodeInvalidArgument, []string{`distro "" cannot be bootstrapped`}, false},
		{"bad suite", api.BootstrapImageRequest{Distro: "debian", Suite: "../etc"},
			api.BootstrapImageRequest{Distro: "debian", Suite: "../etc"}, api.CodeInvalidArgument,
			[]string{`suite "../etc" is not a Debian suite name: use e.g. bookworm`}, false},
		{"bad name", api.BootstrapImageRequest{Distro: "debian", Name: "My Image"},
			api.BootstrapImageRequest{Distro: "debian", Suite: "bookworm", Name: "My Image"}, api.CodeInvalidArgument,
			[]string{`invalid name "My Image"`}, false},
		{"name taken", api.BootstrapImageRequest{Distro: "debian", Name: "base"},
			api.BootstrapImageRequest{Distro: "debian", Suite: "bookworm", Name: "base"}, api.CodeAlreadyExists,
			[]string{`"base" already exists`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			err := b.ValidateBootstrap(context.Background(), &req)
			if diff := cmp.Diff(tt.wantReq, req); diff != "" {
				t.Errorf("request after validation (-want +got):\n%s", diff)
			}
			if tt.hostOnly {
				// Only the host (root, debootstrap) may refuse a valid
				// request, and then as a failed precondition with a fix.
				if err != nil && (!errors.Is(err, api.ErrFailedPrecondition) ||
					!strings.Contains(err.Error(), "needs root") && !strings.Contains(err.Error(), "apt-get install debootstrap")) {
					t.Errorf("a valid request was refused with %v", err)
				}
				return
			}
			if !errors.Is(err, &api.Error{Code: tt.code}) {
				t.Fatalf("got %v, want code %s", err, tt.code)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not contain %q", err, m)
				}
			}
			var ae *api.Error
			errors.As(err, &ae)
			if field := bootstrapFields[tt.name]; ae.Field != field[0] || ae.Allowed != field[1] {
				t.Errorf("field=%q allowed=%q, want field=%q allowed=%q", ae.Field, ae.Allowed, field[0], field[1])
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("message %q names a CLI flag; name the API field instead", err)
			}
		})
	}
}

// bootstrapFields is the Field and Allowed each refused case of
// TestValidateBootstrap must carry.
var bootstrapFields = map[string][2]string{
	"another distro": {"distro", "debian"},
	"no distro":      {"distro", "debian"},
	"bad suite":      {"suite", AllowedSuite},
	"bad name":       {"name", names.Rule},
	"name taken":     {"name", "a name no other image has"},
}

// TestStageNames: the stage an operation shows for each step kind, short
// enough for a progress line.
func TestStageNames(t *testing.T) {
	tests := []struct {
		step provision.Step
		want string
	}{
		{provision.Packages{Names: []string{"git", "curl"}}, "packages"},
		{scriptStep{name: "setup.sh", body: "true"}, "script"},
		{provision.AgentsPreset{}, "preset agents"},
		{namedStep("a step with a rather long descriptive name"), "a step with a rather long desc"},
		{namedStep("short"), "short"},
	}
	for _, tt := range tests {
		if got := stageName(tt.step); got != tt.want {
			t.Errorf("stageName(%q) = %q, want %q", tt.step.Name(), got, tt.want)
		}
	}
}

type namedStep string

func (n namedStep) Name() string { return string(n) }
func (namedStep) Apply(context.Context, *provision.Chroot, func(string)) error {
	return nil
}

// TestScriptStepRecord: a script is recorded in the manifest by its name
// and content digest, never by the temporary directory it ran from, so
// two builds of the same script record the same line and a changed
// script a different one.
func TestScriptStepRecord(t *testing.T) {
	a := scriptStep{name: "setup.sh", body: "apt-get install -y git\n", dir: "/tmp/staging-1"}
	b := scriptStep{name: "setup.sh", body: "apt-get install -y git\n", dir: "/tmp/staging-2"}
	c := scriptStep{name: "setup.sh", body: "apt-get install -y git curl\n", dir: "/tmp/staging-1"}
	if a.Name() != b.Name() {
		t.Errorf("same script, different records: %q, %q", a.Name(), b.Name())
	}
	if a.Name() == c.Name() {
		t.Errorf("changed script, same record %q", a.Name())
	}
	if !strings.HasPrefix(a.Name(), "script setup.sh (sha256 ") || strings.Contains(a.Name(), "staging") {
		t.Errorf("record %q should name the script and its digest only", a.Name())
	}
}

// TestAgentsPresetServices: every probe of the agents preset becomes a
// service of the image on the same port, so `banger vm create` waits for
// exactly what the image says it offers.
func TestAgentsPresetServices(t *testing.T) {
	b := &Builder{CacheDir: t.TempDir()}
	if diff := cmp.Diff([]string{"agents"}, PresetNames()); diff != "" {
		t.Errorf("presets (-want +got):\n%s", diff)
	}
	step, probes, services := presets["agents"](b)
	if _, ok := step.(provision.AgentsPreset); !ok {
		t.Fatalf("agents preset step is %T", step)
	}
	var fromProbes []api.Service
	for _, p := range probes {
		if p.Kind != "tcp" || p.Port <= 0 {
			t.Errorf("probe %+v: want a tcp probe with a port", p)
		}
		fromProbes = append(fromProbes, api.Service{Name: p.Name, Port: p.Port})
	}
	if diff := cmp.Diff(fromProbes, services); diff != "" {
		t.Errorf("services do not mirror probes (-probes +services):\n%s", diff)
	}
}
