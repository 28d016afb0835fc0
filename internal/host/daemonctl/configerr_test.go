package daemonctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/config"
)

// With a broken config file no daemon is started: Start, Restart and
// Ensure refuse with the file's problem, and the bangerd they would run is
// never executed.
func TestBrokenConfigStartsNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	bin := filepath.Join(dir, "bangerd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntouch "+marker+"\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("config /c/config.toml: vm.vcpus = 0 is not valid")
	ctl := &Controller{
		Paths:     config.Paths{StateDir: filepath.Join(dir, "state"), RuntimeDir: filepath.Join(dir, "run")},
		DaemonBin: bin,
		ConfigErr: broken,
	}
	ctx := context.Background()
	tests := []struct {
		name   string
		action string
		call   func() error
	}{
		{"start", "starting", func() error { _, err := ctl.Start(ctx); return err }},
		{"restart", "restarting", func() error { _, err := ctl.Restart(ctx); return err }},
		{"ensure", "starting", func() error { _, err := ctl.Ensure(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, broken) || ce.Action != tt.action || ce.Running != nil {
				t.Fatalf("got %v, want a *ConfigError %q wrapping the config's problem, with no daemon running", err, tt.action)
			}
			want := "not " + tt.action + " bangerd (none answers on " + ctl.Paths.Socket() + "): " + broken.Error() + "; fix the file and check it with `banger config validate`"
			if err.Error() != want {
				t.Errorf("message:\n got %s\nwant %s", err, want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the daemon binary was run")
			}
			if des, _ := os.ReadDir(dir); len(des) != 1 {
				var names []string
				for _, d := range des {
					names = append(names, d.Name())
				}
				t.Errorf("the refusal created files: %s", strings.Join(names, " "))
			}
		})
	}
}
