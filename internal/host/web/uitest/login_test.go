package uitest

import (
	"context"
	"testing"

	"github.com/bangerdev/banger/internal/host/web/browsertest"
)

// status is the JavaScript that fetches path same-origin (the cookie rides
// along, as the UI's own calls do) and yields its HTTP status.
func status(path string) string {
	return `fetch(` + "`" + path + "`" + `).then(r => r.status)`
}

// Without a session every page is the 401 page that says how to log in,
// and the API answers 401; the login URL logs the browser in once (the
// cookie is invisible to scripts); a used URL is refused in another
// browser; logout ends the session.
func TestLogin(t *testing.T) {
	u := start(t)
	p := u.p
	for _, path := range []string{"/", "/create", "/vm/anything", "/static/js/app.js"} {
		if got := p.NavigateStatus(u.origin + path); got != 401 {
			t.Errorf("GET %s without a session: %d, want 401", path, got)
		}
		p.WaitText("body", "Log in to banger", "run `banger web` and open the URL it prints")
	}
	var code int
	p.Eval(status("/v1/vms"), &code)
	if code != 401 {
		t.Errorf("fetch /v1/vms without a session: %d, want 401", code)
	}

	login := u.loginURL()
	if got := p.NavigateStatus(login); got != 200 {
		t.Errorf("the login URL ended on status %d, want 200 (the dashboard)", got)
	}
	if got := p.Location(); got != u.origin+"/" {
		t.Errorf("after login the browser is at %q, want %q (the token is not left in the address bar)", got, u.origin+"/")
	}
	u.dashboard()
	var cookie string
	p.Eval(`document.cookie`, &cookie)
	if cookie != "" {
		t.Errorf("document.cookie = %q: the session cookie must be HttpOnly", cookie)
	}
	p.Eval(status("/v1/vms"), &code)
	if code != 200 {
		t.Errorf("fetch /v1/vms with the session: %d, want 200", code)
	}

	// The same URL again, from a browser that has no session: refused.
	other := browsertest.New(t, browsertest.Options{})
	if got := other.NavigateStatus(login); got != 401 {
		t.Errorf("a used login URL in another browser: %d, want 401", got)
	}
	other.WaitText("body", "This login link is not valid", "banger web")

	p.Navigate(u.origin + "/logout")
	p.WaitText("body", "Logged out")
	if got := p.NavigateStatus(u.origin + "/"); got != 401 {
		t.Errorf("GET / after logout: %d, want 401", got)
	}
	p.WaitText("body", "Log in to banger")
}

// `banger web --revoke` (POST /v1/web/revoke) ends an open page's session:
// its live feed says the connection is lost, and a reload is the 401 page.
func TestRevoke(t *testing.T) {
	u := start(t)
	u.login()
	r, err := u.d.Client.WebRevoke(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions != 1 {
		t.Errorf("revoke ended %d sessions, want 1", r.Sessions)
	}
	// The stream ends first; the reconnect is refused with the reason,
	// which says how to log in again.
	u.p.WaitText("#conn-status", "Lost the live connection", "run `banger web`")
	if got := u.p.NavigateStatus(u.origin + "/"); got != 401 {
		t.Errorf("reload after revoke: %d, want 401", got)
	}
}
