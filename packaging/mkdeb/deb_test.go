package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v0.3.0":                  "0.3.0",
		"v0.3.0-12-gabc123":       "0.3.0+12.gabc123",
		"v0.3.0-12-gabc123-dirty": "0.3.0+12.gabc123+dirty",
		"abc123":                  "0~abc123",
		"":                        "0~",
	} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// A staged tree becomes a package dpkg reads back: its control fields,
// every file at its path with its mode, owned by root, and the maintainer
// scripts (which sh parses).
func TestWriteDeb(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed: apt-get install dpkg")
	}
	root := t.TempDir()
	put := func(rel, body string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	put("usr/bin/banger", "#!/bin/sh\necho banger test\n", 0o755)
	put("usr/share/man/man1/banger.1", ".TH BANGER 1\n", 0o644)
	put("usr/lib/systemd/system/bangerd.service", "[Service]\nExecStart=/usr/bin/bangerd\n", 0o644)
	out := filepath.Join(t.TempDir(), "banger.deb")
	if err := writeDeb(root, "v0.3.0-2-gabc", out); err != nil {
		t.Fatal(err)
	}
	infoOut, err := exec.Command("dpkg-deb", "--info", out).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --info: %v\n%s", err, infoOut)
	}
	info := string(infoOut)
	for _, want := range []string{"Package: banger", "Version: 0.3.0+2.gabc", "Architecture: amd64", "Depends: " + strings.Join(Depends, ", "), "Recommends: tmux", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, want) {
			t.Errorf("control lacks %q:\n%s", want, info)
		}
	}
	listOut, err := exec.Command("dpkg-deb", "--contents", out).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v\n%s", err, listOut)
	}
	list := string(listOut)
	for _, want := range []string{"-rwxr-xr-x root/root", "./usr/bin/banger", "-rw-r--r-- root/root", "./usr/share/man/man1/banger.1", "./usr/lib/systemd/system/bangerd.service"} {
		if !strings.Contains(list, want) {
			t.Errorf("contents lack %q:\n%s", want, list)
		}
	}
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", out, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	if got, err := exec.Command(filepath.Join(x, "usr/bin/banger")).Output(); err != nil || string(got) != "banger test\n" {
		t.Errorf("the extracted banger runs: %q %v", got, err)
	}
	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", out, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if out, err := exec.Command("sh", "-n", filepath.Join(ctl, s)).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", s, err, out)
		}
	}

	empty := t.TempDir()
	if err := writeDeb(empty, "0.1", filepath.Join(t.TempDir(), "x.deb")); err == nil || !strings.Contains(err.Error(), "make install DESTDIR=") {
		t.Errorf("an empty root: %v", err)
	}
}
