package daemonctl

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemontest"
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

// With a broken config file a running daemon is used as it is: Ensure
// does not even ask the installed bangerd for its build (which would lead
// to replacing a stale daemon with one that refuses the file), and
// Restart refuses before stopping it.
func TestBrokenConfigKeepsTheRunningDaemon(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	bin := filepath.Join(dir, "bangerd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("config /c/config.toml: vm.vcpus = 0 is not valid")
	ctl := &Controller{Paths: d.Config.Paths, DaemonBin: bin, ConfigErr: broken, Notices: io.Discard}
	ctx := context.Background()
	before, err := ctl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ctl.Ensure(ctx)
	if err != nil {
		t.Fatalf("Ensure with a running daemon and a broken config: %v", err)
	}
	cl.Close()
	if _, err := os.Stat(marker); err == nil {
		t.Error("Ensure ran the installed bangerd to compare builds")
	}
	_, err = ctl.Restart(ctx)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Running == nil || ce.Running.PID != before.PID {
		t.Fatalf("Restart = %v, want a *ConfigError naming the running daemon (pid %d)", err, before.PID)
	}
	after, err := ctl.Status(ctx)
	if err != nil || after.StartedAt != before.StartedAt {
		t.Errorf("after the refused restart: status %+v, %v; want the same daemon answering", after, err)
	}
}
