package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

// TestRequestShapes records what each client call puts on the wire: the
// method, the escaped path and query, the content type, the upgrade
// headers of the streaming endpoints and the body. A renamed route, a lost
// escape (a VM name with a slash reaching another endpoint) or a tar body
// sent as JSON would show here.
func TestRequestShapes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *client.Client) error
		want request
	}{
		{"create vm", func(c *client.Client) error {
			_, err := c.BeginCreateVM(ctx, api.CreateVMRequest{Name: "dev", Image: "base", VCPUs: 2})
			return err
		}, request{Method: "POST", URI: "/v1/vms", ContentType: "application/json",
			Body: `{"name":"dev","image":"base","vcpus":2}`}},
		{"vm name is escaped", func(c *client.Client) error { _, err := c.VM(ctx, "a/b c"); return err },
			request{Method: "GET", URI: "/v1/vms/a%2Fb%20c"}},
		{"stop sends an empty object", func(c *client.Client) error { _, err := c.StopVM(ctx, "dev"); return err },
			request{Method: "POST", URI: "/v1/vms/dev/stop", ContentType: "application/json", Body: "{}"}},
		{"remove image with force", func(c *client.Client) error { return c.RemoveImage(ctx, "base", true) },
			request{Method: "DELETE", URI: "/v1/images/base?force=true"}},
		{"console follow", func(c *client.Client) error { return c.Console(ctx, "dev", true, io.Discard) },
			request{Method: "GET", URI: "/v1/vms/dev/console?follow=true"}},
		{"shutdown reason", func(c *client.Client) error { return c.Shutdown(ctx, "upgrade") },
			request{Method: "POST", URI: "/v1/daemon/shutdown", ContentType: "application/json", Body: `{"reason":"upgrade"}`}},
		{"deep doctor timeout in ms", func(c *client.Client) error {
			_, err := c.BeginDeepDoctor(ctx, api.DeepDoctorRequest{ProbeTimeout: api.Duration(3e9)})
			return err
		}, request{Method: "POST", URI: "/v1/doctor/deep", ContentType: "application/json", Body: `{"probe_timeout_ms":3000}`}},
		{"web login", func(c *client.Client) error {
			_, err := c.WebLogin(ctx, api.WebLoginRequest{Listen: "127.0.0.1:0"})
			return err
		}, request{Method: "POST", URI: "/v1/web/login", ContentType: "application/json", Body: `{"listen":"127.0.0.1:0"}`}},
		{"exec and wait", func(c *client.Client) error {
			_, err := c.ExecWait(ctx, "dev", api.ExecRequest{Argv: []string{"uname", "-a"}})
			return err
		}, request{Method: "POST", URI: "/v1/vms/dev/exec?wait=true", ContentType: "application/json", Body: `{"argv":["uname","-a"]}`}},
		{"web revoke", func(c *client.Client) error { _, err := c.WebRevoke(ctx); return err },
			request{Method: "POST", URI: "/v1/web/revoke", ContentType: "application/json", Body: "{}"}},
		{"workspace tar body", func(c *client.Client) error {
			_, err := c.PrepareWorkspace(ctx, "dev", api.PrepareWorkspaceRequest{Dir: "/root/my repo"}, strings.NewReader("TARBYTES"))
			return err
		}, request{Method: "PUT", URI: "/v1/vms/dev/workspace?dir=%2Froot%2Fmy+repo", ContentType: api.ContentTypeTar, Body: "TARBYTES"}},
		{"workspace default dir", func(c *client.Client) error {
			_, err := c.PrepareWorkspace(ctx, "dev", api.PrepareWorkspaceRequest{}, strings.NewReader("T"))
			return err
		}, request{Method: "PUT", URI: "/v1/vms/dev/workspace?dir=", ContentType: api.ContentTypeTar, Body: "T"}},
		{"workspace with its record", func(c *client.Client) error {
			_, err := c.PrepareWorkspace(ctx, "dev", api.PrepareWorkspaceRequest{Mode: "git", HostPath: "/src/a b", Head: "aa", Sent: "bb"}, strings.NewReader("T"))
			return err
		}, request{Method: "PUT", URI: "/v1/vms/dev/workspace?dir=&head=aa&host_path=%2Fsrc%2Fa+b&mode=git&sent=bb", ContentType: api.ContentTypeTar, Body: "T"}},
		{"workspace diff with pathspecs", func(c *client.Client) error {
			_, err := c.WorkspaceDiff(ctx, "dev", "src/", "*.go")
			return err
		}, request{Method: "GET", URI: "/v1/vms/dev/workspace/diff?path=src%2F&path=%2A.go"}},
		{"workspace patch bounded", func(c *client.Client) error { return c.WorkspacePatch(ctx, "dev", 1024, io.Discard) },
			request{Method: "GET", URI: "/v1/vms/dev/workspace/diff?format=patch&max=1024"}},
		{"workspace bundle", func(c *client.Client) error { return c.WorkspaceBundle(ctx, "dev", 0, io.Discard) },
			request{Method: "GET", URI: "/v1/vms/dev/workspace/bundle"}},
		{"workspace files", func(c *client.Client) error { return c.WorkspaceFiles(ctx, "dev", 5, io.Discard) },
			request{Method: "GET", URI: "/v1/vms/dev/workspace/files?max=5"}},
		{"copy in tar body", func(c *client.Client) error {
			_, err := c.CopyIn(ctx, "dev", "/tmp/a&b", strings.NewReader("TAR2"))
			return err
		}, request{Method: "PUT", URI: "/v1/vms/dev/files?path=%2Ftmp%2Fa%26b", ContentType: api.ContentTypeTar, Body: "TAR2"}},
		{"copy out", func(c *client.Client) error { return c.CopyOut(ctx, "dev", "/etc/hosts", io.Discard) },
			request{Method: "GET", URI: "/v1/vms/dev/files?path=%2Fetc%2Fhosts"}},
		{"session ref escaped", func(c *client.Client) error { _, err := c.Session(ctx, "dev", "x/y"); return err },
			request{Method: "GET", URI: "/v1/vms/dev/sessions/x%2Fy"}},
		{"signal session", func(c *client.Client) error { _, err := c.SignalSession(ctx, "dev", "s1", "TERM"); return err },
			request{Method: "POST", URI: "/v1/vms/dev/sessions/s1/signal", ContentType: "application/json", Body: `{"signal":"TERM"}`}},
		{"exec upgrades", func(c *client.Client) error {
			_, err := c.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"ls", "-l"}, TTY: true, Rows: 24, Cols: 80}, nil, io.Discard, io.Discard, nil)
			return err
		}, request{Method: "POST", URI: "/v1/vms/dev/exec", ContentType: "application/json",
			Connection: "Upgrade", Upgrade: api.UpgradeStream, Body: `{"argv":["ls","-l"],"tty":true,"rows":24,"cols":80}`}},
		{"attach from an offset, no follow", func(c *client.Client) error {
			_, _, err := c.Attach(ctx, "dev", "s1", client.AttachOptions{Since: 42, NoFollow: true})
			return err
		}, request{Method: "POST", URI: "/v1/vms/dev/sessions/s1/attach?follow=false&since=42",
			ContentType: "application/json", Connection: "Upgrade", Upgrade: api.UpgradeStream}},
		{"attach everything", func(c *client.Client) error {
			_, _, err := c.Attach(ctx, "dev", "s1", client.AttachOptions{Since: -1})
			return err
		}, request{Method: "POST", URI: "/v1/vms/dev/sessions/s1/attach?since=-1",
			ContentType: "application/json", Connection: "Upgrade", Upgrade: api.UpgradeStream}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The fake refuses everything, so streaming calls stop after
			// the request and every call returns the same typed error.
			f, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusConflict)
				json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Errorf(api.CodeConflict, "refused by the fake")})
			})
			err := tt.call(c)
			if !errors.Is(err, api.ErrConflict) || fmt.Sprint(err) != "refused by the fake" {
				t.Errorf("call returned %v, want the fake's error", err)
			}
			if diff := cmp.Diff([]request{tt.want}, f.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCopyOutTrailerError: a copy that fails after the tar stream began
// reports the daemon's error from the trailer as the typed error, after
// the bytes that did arrive were written.
func TestCopyOutTrailerError(t *testing.T) {
	tests := []struct {
		name    string
		trailer string
		want    error
		wantMsg string
	}{
		{"typed trailer", `{"code":"not_found","message":"/etc/x vanished"}`, api.ErrNotFound, "/etc/x vanished"},
		{"untyped trailer", `agent went away`, api.ErrInternal, "copying /etc out of dev: agent went away"},
		{"no trailer", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", api.TrailerError)
				w.Header().Set("Content-Type", api.ContentTypeTar)
				w.Write([]byte("PARTIAL"))
				if tt.trailer != "" {
					w.Header().Set(api.TrailerError, tt.trailer)
				}
			})
			var out strings.Builder
			err := c.CopyOut(context.Background(), "dev", "/etc", &out)
			if out.String() != "PARTIAL" {
				t.Errorf("wrote %q, want the bytes that arrived", out.String())
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || !errors.Is(err, tt.want) || ae.Message != tt.wantMsg {
				t.Fatalf("got %#v, want %v with message %q", err, tt.want, tt.wantMsg)
			}
		})
	}
}

// TestAttachReadsTheSessionHeader: the session in the 101 answer comes
// back from Attach, and a stream the daemon closes at once ends Next with
// an error instead of hanging.
func TestAttachReadsTheSessionHeader(t *testing.T) {
	want := api.Session{ID: "s1", Name: "agent", VM: "dev", Argv: []string{"claude"}, State: api.SessionRunning, OutputBytes: 9}
	hdr, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n\r\n", api.UpgradeStream, api.HeaderSession, hdr)
		brw.Flush()
	})
	a, got, err := c.Attach(context.Background(), "dev", "s1", client.AttachOptions{Since: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if _, err := a.Next(); err == nil {
		t.Error("Next on a closed stream returned a chunk, want an error")
	}
}
