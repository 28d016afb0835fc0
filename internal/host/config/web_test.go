package config

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckWebListen: loopback addresses with a port pass (port 0 too),
// anything reachable from another machine is refused with the reason and
// the ssh -L command, and a malformed address says what to give.
func TestCheckWebListen(t *testing.T) {
	tests := []struct {
		addr     string
		loopback bool   // refused as not loopback
		want     string // "" = accepted; else a substring of the error
	}{
		{addr: "127.0.0.1:7180"},
		{addr: "127.0.0.1:0"},
		{addr: "127.1.2.3:80"},
		{addr: "[::1]:7180"},
		{addr: "localhost:7180"},
		{addr: "LocalHost:9000"},
		{addr: "0.0.0.0:7180", loopback: true, want: `"0.0.0.0" is not: reach it from another machine with ssh -L 7180:127.0.0.1:7180 HOST`},
		{addr: ":7180", loopback: true, want: `"" is not`},
		{addr: "[::]:7180", loopback: true, want: `"::" is not`},
		{addr: "192.168.1.5:8080", loopback: true, want: "ssh -L 8080:127.0.0.1:8080 HOST"},
		{addr: "example.com:7180", loopback: true, want: `"example.com" is not`},
		{addr: "[fe80::1%lo]:7180", loopback: true, want: "loopback only"},
		{addr: "10.0.0.1:0", loopback: true, want: "ssh -L 7180:127.0.0.1:7180 HOST"},
		{addr: "127.0.0.1", want: "is not host:port"},
		{addr: "127.0.0.1:http", want: "has no valid port"},
		{addr: "127.0.0.1:65536", want: "has no valid port"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := CheckWebListen(tt.addr)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckWebListen(%q) = %v, want nil", tt.addr, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckWebListen(%q) = %v, want an error containing %q", tt.addr, err, tt.want)
			}
			if got := errors.Is(err, ErrNotLoopback); got != tt.loopback {
				t.Errorf("errors.Is(err, ErrNotLoopback) = %v, want %v", got, tt.loopback)
			}
		})
	}
}

// TestLoadWebListen: the file's web.listen is loaded, and a bad one is
// refused with the file, the key and the reason.
func TestLoadWebListen(t *testing.T) {
	tests := []struct {
		name, file, want, wantErr string
	}{
		{name: "off by default", file: ""},
		{name: "loopback", file: "[web]\nlisten = \"127.0.0.1:7180\"", want: "127.0.0.1:7180"},
		{name: "not loopback", file: "[web]\nlisten = \"0.0.0.0:7180\"",
			wantErr: `config {FILE}: web.listen = "0.0.0.0:7180" is refused: the web UI listens on loopback only (127.0.0.0/8, ::1 or localhost), and "0.0.0.0" is not: reach it from another machine with ssh -L 7180:127.0.0.1:7180 HOST`},
		{name: "no port", file: "[web]\nlisten = \"127.0.0.1\"",
			wantErr: `config {FILE}: web.listen = "127.0.0.1" is not valid: want "" (the web UI is off until "banger web") or a loopback address with a port, e.g. "127.0.0.1:7180"`},
		{name: "type", file: "[web]\nlisten = 7180",
			wantErr: `config {FILE}: web.listen = 7180 is not valid: want "" (the web UI is off until "banger web") or a loopback address with a port, e.g. "127.0.0.1:7180"`},
		{name: "not a table", file: "web = \"127.0.0.1:7180\"",
			wantErr: `config {FILE}: web = "127.0.0.1:7180" is not valid: want a table, e.g. [web]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.write(t, tt.file+"\n")
			c, err := Load(f.paths, f.env)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "{FILE}", f.paths.ConfigFile)
				if err == nil || err.Error() != want {
					t.Fatalf("Load() error = %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Web.Listen != tt.want {
				t.Errorf("Web.Listen = %q, want %q", c.Web.Listen, tt.want)
			}
		})
	}
}
