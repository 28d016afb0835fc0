package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestDefaultTOML pins the rendering of the defaults: it is what
// "banger config show" prints on a fresh install.
func TestDefaultTOML(t *testing.T) {
	paths := Paths{
		ConfigFile: "/home/user/.config/banger/config.toml",
		DataDir:    "/home/user/.local/share/banger",
		StateDir:   "/home/user/.local/state/banger",
		RuntimeDir: "/run/user/1000/banger",
	}
	got, err := Default(paths, "/home/user").TOML()
	if err != nil {
		t.Fatalf("TOML() error = %v", err)
	}
	golden := filepath.Join("testdata", "default.toml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Default().TOML() mismatch (-%s +got); run go test -update if the change is intended:\n%s", golden, diff)
	}
}
