package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ReadDirs takes each directory key whose own value is valid, from a file
// Load refuses, and the default for the rest.
func TestReadDirs(t *testing.T) {
	tests := []struct {
		name     string
		file     *string // nil: no file
		want     func(f fixture) Paths
		fromFile []string
	}{
		{
			name: "no file",
			want: func(f fixture) Paths { return f.paths },
		},
		{
			name: "a bad value elsewhere",
			file: ptr("runtime_dir = \"/run/b\"\nstate_dir = \"~/st\"\n[vm]\nvcpus = 0\n"),
			want: func(f fixture) Paths {
				p := f.paths
				p.RuntimeDir, p.StateDir = "/run/b", filepath.Join(f.home, "st")
				return p
			},
			fromFile: []string{"state_dir", "runtime_dir"},
		},
		{
			name:     "an unknown key",
			file:     ptr("data_dir = \"/d\"\nvcpu = 2\n"),
			want:     func(f fixture) Paths { p := f.paths; p.DataDir = "/d"; return p },
			fromFile: []string{"data_dir"},
		},
		{
			name:     "bad TOML after the keys",
			file:     ptr("runtime_dir = \"/run/b\" # mine\n[vm\nvcpus = 2\n"),
			want:     func(f fixture) Paths { p := f.paths; p.RuntimeDir = "/run/b"; return p },
			fromFile: []string{"runtime_dir"},
		},
		{
			name:     "bad TOML on a line before the keys",
			file:     ptr("log_level = \nruntime_dir = '/run/b'\n"),
			want:     func(f fixture) Paths { p := f.paths; p.RuntimeDir = "/run/b"; return p },
			fromFile: []string{"runtime_dir"},
		},
		{
			name: "bad TOML: keys under a table are not top-level",
			file: ptr("[vm\nruntime_dir = \"/run/b\"\n"),
			want: func(f fixture) Paths { return f.paths },
		},
		{
			name:     "a bad directory keeps its default, the good one is taken",
			file:     ptr("runtime_dir = \"relative\"\nstate_dir = \"/st\"\n"),
			want:     func(f fixture) Paths { p := f.paths; p.StateDir = "/st"; return p },
			fromFile: []string{"state_dir"},
		},
		{
			name: "a directory of the wrong type keeps its default",
			file: ptr("runtime_dir = 5\n"),
			want: func(f fixture) Paths { return f.paths },
		},
		{
			name: "a runtime_dir too long for the socket keeps its default",
			file: ptr("runtime_dir = \"/" + strings.Repeat("r", 95) + "\"\n"),
			want: func(f fixture) Paths { return f.paths },
		},
		{
			name: "empty values are the defaults",
			file: ptr("runtime_dir = \"\"\n[vm]\nvcpus = 0\n"),
			want: func(f fixture) Paths { return f.paths },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.file != nil {
				f.write(t, *tt.file)
				if _, err := Load(f.paths, f.env); err == nil && tt.name != "no file" {
					t.Fatalf("Load accepts the file; the case is meant to be one it refuses")
				}
			}
			got, fromFile := ReadDirs(f.paths, f.env)
			if diff := cmp.Diff(tt.want(f), got); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.fromFile, fromFile); diff != "" {
				t.Errorf("fromFile (-want +got):\n%s", diff)
			}
		})
	}
}
