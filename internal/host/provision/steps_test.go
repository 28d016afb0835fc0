package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every step type is a Step.
var (
	_ Step = Packages{}
	_ Step = Script{}
	_ Step = WriteFile{}
	_ Step = Service{}
	_ Step = AgentsPreset{}
)

func TestDescribe(t *testing.T) {
	steps := []Step{
		Packages{Names: []string{"hello", "jq"}},
		Script{Path: "/home/me/setup.sh"},
		WriteFile{Path: "/etc/motd", Content: []byte("hi\n")},
		Service{UnitName: "web", Unit: "[Service]\nExecStart=/bin/true\n", Enable: true},
		AgentsPreset{},
	}
	want := []string{
		"packages hello jq",
		"script /home/me/setup.sh",
		"write-file /etc/motd (mode 0644, 3 bytes, sha256 98ea6e4f216f2fb4)",
		"service web.service (enabled, sha256 " + shortSum("[Service]\nExecStart=/bin/true\n") + ")",
		"agents preset (node 24, npm 11, npm -g opencode-ai @anthropic-ai/claude-code @mariozechner/pi-coding-agent, opencode.service on :4096)",
	}
	got := Describe(steps)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
}

func shortSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// linksUnder lists the symbolic links below dir as "path -> target".
func linksUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel+" -> "+l)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestService(t *testing.T) {
	unit := "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\nWantedBy=ssh.service\nRequiredBy=foo.target\n"
	tests := []struct {
		name      string
		steps     []Service // applied in order
		wantLinks []string
		wantErr   string
	}{
		{
			name:  "enable links every install target",
			steps: []Service{{UnitName: "opencode", Unit: unit, Enable: true}},
			wantLinks: []string{
				"foo.target.requires/opencode.service -> /etc/systemd/system/opencode.service",
				"multi-user.target.wants/opencode.service -> /etc/systemd/system/opencode.service",
				"ssh.service.wants/opencode.service -> /etc/systemd/system/opencode.service",
			},
		},
		{
			name:      "enable twice is idempotent",
			steps:     []Service{{UnitName: "a.service", Unit: unit, Enable: true}, {UnitName: "a.service", Unit: unit, Enable: true}},
			wantLinks: []string{"foo.target.requires/a.service -> /etc/systemd/system/a.service", "multi-user.target.wants/a.service -> /etc/systemd/system/a.service", "ssh.service.wants/a.service -> /etc/systemd/system/a.service"},
		},
		{
			name:  "disable removes the links",
			steps: []Service{{UnitName: "a.service", Unit: unit, Enable: true}, {UnitName: "a.service", Unit: unit}},
		},
		{
			name:    "enable without an install section",
			steps:   []Service{{UnitName: "b", Unit: "[Service]\nExecStart=/bin/true\n", Enable: true}},
			wantErr: "WantedBy=multi-user.target",
		},
		{
			name:    "bad name",
			steps:   []Service{{UnitName: "../../etc/passwd", Unit: unit}},
			wantErr: "service name",
		},
		{
			name:      "timer",
			steps:     []Service{{UnitName: "backup.timer", Unit: "[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n", Enable: true}},
			wantLinks: []string{"timers.target.wants/backup.timer -> /etc/systemd/system/backup.timer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t)
			c := &Chroot{Root: root}
			var err error
			for _, s := range tt.steps {
				if err = s.Apply(context.Background(), c, nil); err != nil {
					break
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantLinks, linksUnder(t, filepath.Join(root, "etc/systemd/system"))); diff != "" {
				t.Errorf("links (-want +got):\n%s", diff)
			}
			name := tt.steps[0].unitName()
			b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", name))
			if err != nil || string(b) != tt.steps[len(tt.steps)-1].Unit {
				t.Errorf("unit file %q, %v", b, err)
			}
		})
	}
}

func TestInstallTargets(t *testing.T) {
	tests := []struct {
		unit          string
		wanted, reqBy []string
	}{
		{unit: "[Install]\nWantedBy=a.target b.target\n", wanted: []string{"a.target", "b.target"}},
		{unit: "[Service]\nWantedBy=not-install.target\n[Install]\n# WantedBy=commented.target\nRequiredBy = c.target\n", reqBy: []string{"c.target"}},
		{unit: "[Service]\nExecStart=/bin/true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			w, r := installTargets(tt.unit)
			if diff := cmp.Diff(tt.wanted, w); diff != "" {
				t.Errorf("WantedBy (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.reqBy, r); diff != "" {
				t.Errorf("RequiredBy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteFileStep(t *testing.T) {
	root := fakeRoot(t, "usr/lib")
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	c := &Chroot{Root: root}
	tests := []struct {
		step     WriteFile
		hostPath string
		wantMode os.FileMode
		wantErr  string
	}{
		{step: WriteFile{Path: "/etc/motd", Content: []byte("hi")}, hostPath: "etc/motd", wantMode: 0o644},
		{step: WriteFile{Path: "/opt/x/run.sh", Mode: 0o755, Content: []byte("#!/bin/sh")}, hostPath: "opt/x/run.sh", wantMode: 0o755},
		{step: WriteFile{Path: "/lib/systemd/system/x.service", Content: []byte("u")}, hostPath: "usr/lib/systemd/system/x.service", wantMode: 0o644},
		{step: WriteFile{Path: "relative"}, wantErr: "absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.step.Path, func(t *testing.T) {
			err := tt.step.Apply(context.Background(), c, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(filepath.Join(root, tt.hostPath))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.wantMode || !fi.Mode().IsRegular() {
				t.Errorf("mode %v, want %v", fi.Mode(), tt.wantMode)
			}
		})
	}
}

func TestStepInputErrors(t *testing.T) {
	c := &Chroot{Root: fakeRoot(t)}
	tests := []struct {
		name    string
		step    Step
		wantErr string
	}{
		{"unknown script", Script{Path: "/nonexistent/setup.sh"}, "readable shell script"},
		{"option as package", Packages{Names: []string{"-o=Dpkg::x"}}, "not a Debian package name"},
		{"space in package", Packages{Names: []string{"a b"}}, "not a Debian package name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.step.Apply(context.Background(), c, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := (Packages{}).Apply(context.Background(), c, nil); err != nil {
		t.Errorf("empty package list: %v", err)
	}
}

func TestAgentsPresetData(t *testing.T) {
	if diff := cmp.Diff([]Probe{{Name: "opencode", Kind: "tcp", Port: 4096}}, AgentsPreset{}.Probes()); diff != "" {
		t.Errorf("Probes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Probe{{Name: "opencode", Kind: "tcp", Port: 8080}}, AgentsPreset{Port: 8080}.Probes()); diff != "" {
		t.Errorf("Probes with a port (-want +got):\n%s", diff)
	}
	d := AgentsPreset{Packages: []string{"opencode-ai@1.2.3", "@anthropic-ai/claude-code@^2", "@mariozechner/pi-coding-agent"}}.withDefaults()
	if diff := cmp.Diff([]string{"opencode-ai", "@anthropic-ai/claude-code", "@mariozechner/pi-coding-agent"}, d.AllowScripts); diff != "" {
		t.Errorf("default AllowScripts (-want +got):\n%s", diff)
	}
	unit := OpencodeUnit(4096)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/opencode serve --port 4096 --hostname 0.0.0.0",
		"User=root", "WorkingDirectory=/root", "Restart=on-failure", "After=network-online.target", "WantedBy=multi-user.target",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("opencode.service lacks %q", want)
		}
	}
	if w, _ := installTargets(unit); len(w) == 0 {
		t.Error("opencode.service cannot be enabled")
	}
}

func TestAgentsPresetRefusesUnsuitableImages(t *testing.T) {
	loader := strings.TrimPrefix(glibcLoader(runtime.GOARCH), "/")
	tests := []struct {
		name    string
		files   []string
		wantErr string
	}{
		{name: "musl image", files: []string{"lib/ld-musl-x86_64.so.1", "usr/lib/libstdc++.so.6"}, wantErr: "needs a glibc image"},
		{name: "no libstdc++", files: []string{loader}, wantErr: "libstdc++6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t)
			for _, f := range tt.files {
				os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
				os.WriteFile(filepath.Join(root, f), nil, 0o755)
			}
			err := AgentsPreset{}.Apply(context.Background(), &Chroot{Root: root}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "HOME=/root"}, []string{"HOME=/tmp", "X=1"})
	if diff := cmp.Diff([]string{"PATH=/bin", "HOME=/tmp", "X=1"}, got); diff != "" {
		t.Errorf("mergeEnv (-want +got):\n%s", diff)
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := newLineWriter(func(s string) { lines = append(lines, s) }, 2)
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\r\nprogress 10%\rprogress 20%\n\nlast"))
	w.flush()
	if diff := cmp.Diff([]string{"one", "two", "progress 10%", "progress 20%", "last"}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if got := w.Tail(); got != "progress 20%\nlast" {
		t.Errorf("Tail = %q", got)
	}
}
