package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultPaths(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		uid     int
		want    Paths
		wantErr string
	}{
		{
			name: "BANGER_HOME roots every path",
			env:  map[string]string{EnvHome: "/r", "HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"},
			uid:  1000,
			want: Paths{ConfigFile: "/r/config/config.toml", DataDir: "/r/data", StateDir: "/r/state", RuntimeDir: "/r/run"},
		},
		{
			name: "BANGER_HOME is cleaned and needs no HOME",
			env:  map[string]string{EnvHome: "/r/sub/"},
			uid:  1000,
			want: Paths{ConfigFile: "/r/sub/config/config.toml", DataDir: "/r/sub/data", StateDir: "/r/sub/state", RuntimeDir: "/r/sub/run"},
		},
		{
			name: "BANGER_CONFIG overrides the file under BANGER_HOME",
			env:  map[string]string{EnvHome: "/r", EnvConfig: "/etc/banger.toml"},
			uid:  1000,
			want: Paths{ConfigFile: "/etc/banger.toml", DataDir: "/r/data", StateDir: "/r/state", RuntimeDir: "/r/run"},
		},
		{
			name: "empty BANGER_HOME counts as unset",
			env:  map[string]string{EnvHome: "", "HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"},
			uid:  1000,
			want: Paths{
				ConfigFile: "/home/u/.config/banger/config.toml",
				DataDir:    "/home/u/.local/share/banger",
				StateDir:   "/home/u/.local/state/banger",
				RuntimeDir: "/run/user/1000/banger",
			},
		},
		{
			name: "XDG variables",
			env: map[string]string{
				"HOME":            "/home/u",
				"XDG_CONFIG_HOME": "/x/config",
				"XDG_DATA_HOME":   "/x/data",
				"XDG_STATE_HOME":  "/x/state",
				"XDG_RUNTIME_DIR": "/x/run",
			},
			uid: 1000,
			want: Paths{
				ConfigFile: "/x/config/banger/config.toml",
				DataDir:    "/x/data/banger",
				StateDir:   "/x/state/banger",
				RuntimeDir: "/x/run/banger",
			},
		},
		{
			name: "XDG defaults under HOME, runtime dir in /tmp",
			env:  map[string]string{"HOME": "/home/u"},
			uid:  1000,
			want: Paths{
				ConfigFile: "/home/u/.config/banger/config.toml",
				DataDir:    "/home/u/.local/share/banger",
				StateDir:   "/home/u/.local/state/banger",
				RuntimeDir: "/tmp/banger-1000",
			},
		},
		{
			name: "runtime fallback follows TMPDIR",
			env:  map[string]string{"HOME": "/home/u", "TMPDIR": "/var/tmp/"},
			uid:  1001,
			want: Paths{
				ConfigFile: "/home/u/.config/banger/config.toml",
				DataDir:    "/home/u/.local/share/banger",
				StateDir:   "/home/u/.local/state/banger",
				RuntimeDir: "/var/tmp/banger-1001",
			},
		},
		{
			name: "runtime fallback for root is /run/banger",
			env:  map[string]string{"HOME": "/root"},
			uid:  0,
			want: Paths{
				ConfigFile: "/root/.config/banger/config.toml",
				DataDir:    "/root/.local/share/banger",
				StateDir:   "/root/.local/state/banger",
				RuntimeDir: "/run/banger",
			},
		},
		{
			name: "root's runtime is /run/banger even from a login shell",
			env:  map[string]string{"HOME": "/root", "XDG_RUNTIME_DIR": "/run/user/0"},
			uid:  0,
			want: Paths{
				ConfigFile: "/root/.config/banger/config.toml",
				DataDir:    "/root/.local/share/banger",
				StateDir:   "/root/.local/state/banger",
				RuntimeDir: "/run/banger",
			},
		},
		{
			name: "relative XDG values are ignored",
			env: map[string]string{
				"HOME":            "/home/u",
				"XDG_CONFIG_HOME": "config",
				"XDG_DATA_HOME":   "./data",
				"XDG_STATE_HOME":  "state",
				"XDG_RUNTIME_DIR": "run",
				"TMPDIR":          "tmp",
			},
			uid: 1000,
			want: Paths{
				ConfigFile: "/home/u/.config/banger/config.toml",
				DataDir:    "/home/u/.local/share/banger",
				StateDir:   "/home/u/.local/state/banger",
				RuntimeDir: "/tmp/banger-1000",
			},
		},
		{
			name: "BANGER_CONFIG overrides the XDG file",
			env:  map[string]string{"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000", EnvConfig: "/srv/b/../banger.toml"},
			uid:  1000,
			want: Paths{
				ConfigFile: "/srv/banger.toml",
				DataDir:    "/home/u/.local/share/banger",
				StateDir:   "/home/u/.local/state/banger",
				RuntimeDir: "/run/user/1000/banger",
			},
		},
		{
			name: "HOME is not needed when nothing falls back to it",
			env:  map[string]string{EnvConfig: "/c.toml", "XDG_DATA_HOME": "/d", "XDG_STATE_HOME": "/s"},
			uid:  1000,
			want: Paths{ConfigFile: "/c.toml", DataDir: "/d/banger", StateDir: "/s/banger", RuntimeDir: "/tmp/banger-1000"},
		},
		{
			name:    "HOME unset and needed",
			env:     map[string]string{"XDG_DATA_HOME": "/d"},
			uid:     1000,
			wantErr: `HOME is not set and XDG_CONFIG_HOME is not an absolute path: set HOME, or set BANGER_HOME=/some/dir to keep every banger path in one directory`,
		},
		{
			name:    "relative HOME and needed",
			env:     map[string]string{"HOME": "home/u", "XDG_CONFIG_HOME": "/c"},
			uid:     1000,
			wantErr: `HOME="home/u" is not an absolute path and XDG_DATA_HOME is not set: set HOME to your home directory, or set BANGER_HOME=/some/dir`,
		},
		{
			name:    "relative BANGER_HOME",
			env:     map[string]string{EnvHome: "tmp/b"},
			wantErr: `BANGER_HOME="tmp/b" is not an absolute path: set it to an absolute directory, e.g. BANGER_HOME=$PWD/tmp/b`,
		},
		{
			name:    "relative BANGER_CONFIG",
			env:     map[string]string{EnvHome: "/r", EnvConfig: "my.toml"},
			wantErr: `BANGER_CONFIG="my.toml" is not an absolute path: set it to the config file's absolute path, e.g. BANGER_CONFIG=$PWD/my.toml`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DefaultPaths(MapEnv(tt.env), tt.uid)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("DefaultPaths() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DefaultPaths() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DefaultPaths() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPathsFiles(t *testing.T) {
	p := Paths{ConfigFile: "/c/config.toml", DataDir: "/d", StateDir: "/s", RuntimeDir: "/r"}
	got := map[string]string{
		"Socket":        p.Socket(),
		"PIDFile":       p.PIDFile(),
		"DBFile":        p.DBFile(),
		"LogFile":       p.LogFile(),
		"ManagedSSHKey": p.ManagedSSHKey(),
		"InstanceLock":  p.InstanceLock(),
		"SocketLock":    p.SocketLock(),
		"StartLock":     p.StartLock(),
	}
	want := map[string]string{
		"Socket":        "/r/bangerd.sock",
		"PIDFile":       "/r/bangerd.pid",
		"DBFile":        "/s/banger.db",
		"LogFile":       "/s/bangerd.log",
		"ManagedSSHKey": "/d/ssh/id_ed25519",
		// The instance lock guards the store, so it lives beside it.
		"InstanceLock": "/s/bangerd.lock",
		"SocketLock":   "/r/bangerd.sock.lock",
		"StartLock":    "/r/bangerd.start.lock",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Paths files mismatch (-want +got):\n%s", diff)
	}
}

func TestNilEnv(t *testing.T) {
	if _, err := DefaultPaths(nil, 1000); err == nil {
		t.Fatal("DefaultPaths(nil env) succeeded, want an error asking for HOME")
	}
}
