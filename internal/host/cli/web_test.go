package cli

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/daemontest"
)

// TestWebCommand: banger web against a real bangerd prints a URL that
// logs a browser in once, says so on stderr, refuses a non-loopback
// --listen naming the flag, --revoke logs the browser out, and --open
// without xdg-open says what to do.
func TestWebCommand(t *testing.T) {
	h := newCLIHarness(t, daemontest.Options{})
	ctx := context.Background()

	r := h.run(ctx, "web", "--listen", "127.0.0.1:0")
	url := strings.TrimSpace(r.stdout)
	if r.code != 0 || !regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/login\?token=[A-Za-z0-9_-]{43}$`).MatchString(url) {
		t.Fatalf("banger web: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "once") || !strings.Contains(r.stderr, "5 minutes") {
		t.Errorf("stderr %q does not say the URL works once within 5 minutes", r.stderr)
	}
	resp, err := noRedirects.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("opening the URL = %d with %d cookies, want 303 and the session cookie", resp.StatusCode, len(resp.Cookies()))
	}

	r = h.run(ctx, "web", "--listen", "0.0.0.0:7180")
	if r.code != ExitError || !strings.Contains(r.stderr, "--listen") || !strings.Contains(r.stderr, "loopback only") || !strings.Contains(r.stderr, "ssh -L 7180:127.0.0.1:7180") {
		t.Errorf("banger web --listen 0.0.0.0:7180: exit %d, stderr %q", r.code, r.stderr)
	}

	r = h.run(ctx, "web", "--revoke")
	if r.code != 0 || r.stdout != "ended 1 web session and dropped 0 unused login tokens\n" {
		t.Errorf("banger web --revoke: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r = h.run(ctx, "web", "--revoke", "--open"); r.code != ExitUsage {
		t.Errorf("banger web --revoke --open: exit %d, want a usage error", r.code)
	}

	t.Setenv("PATH", t.TempDir()) // no xdg-open
	r = h.run(ctx, "web", "--open")
	if r.code != ExitError || !strings.Contains(r.stderr, "xdg-open") || !strings.Contains(r.stdout, "/login?token=") {
		t.Errorf("banger web --open without xdg-open: exit %d, stdout %q, stderr %q; want the URL and the reason", r.code, r.stdout, r.stderr)
	}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
