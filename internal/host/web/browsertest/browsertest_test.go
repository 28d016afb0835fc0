package browsertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// testPage is a small page with what the web UI's tests touch: a form with
// a text field, a prefilled field, a select and a textarea; a button behind
// a confirm(); text that arrives late; a console message and an uncaught
// exception.
const testPage = `<!doctype html>
<html><head><title>browsertest</title></head><body>
<form onsubmit="return false">
  <label>Name <input name="name"></label>
  <label>vCPUs <input name="vcpus" value="2"></label>
  <label>Image <select name="image"><option>base</option><option>agents</option></select></label>
  <label>Terminal <textarea name="term"></textarea></label>
  <label>Terminal that handles its keys <textarea name="term2"></textarea></label>
  <button type="button" id="go">Create</button>
</form>
<div id="out"></div>
<div id="late"></div>
<div id="keys"></div>
<div id="keys2"></div>
<div id="leaving">leaving soon</div>
<script>
console.log("hello from the page");
const q = s => document.querySelector(s);
setTimeout(() => { q("#late").innerText = "arrived late" }, 300);
setTimeout(() => { q("#leaving").remove() }, 300);
q("#go").addEventListener("click", () => {
  if (confirm("Create the VM?")) {
    q("#out").innerText = "name=" + q("[name=name]").value + " vcpus=" + q("[name=vcpus]").value + " image=" + q("[name=image]").value;
  }
});
q("[name=term]").addEventListener("keydown", e => { q("#keys").innerText += "[" + e.key + "]" });
// Like xterm.js: the keydown is handled and cancelled; a keypress or an
// input that still arrives would type the key twice.
q("[name=term2]").addEventListener("keydown", e => { q("#keys2").innerText += "[" + e.key + "]"; e.preventDefault() });
q("[name=term2]").addEventListener("keypress", e => { q("#keys2").innerText += "(keypress " + e.key + ")" });
q("[name=term2]").addEventListener("input", e => { q("#keys2").innerText += "(input)" });
setTimeout(() => { throw new Error("boom from the page") }, 10);
</script>
</body></html>`

func serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Query().Get("status") == "404" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, testPage)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The steps a web UI test uses, each against the page's real behaviour.
func TestSteps(t *testing.T) {
	p := New(t, Options{})
	url := serve(t)
	if got := p.NavigateStatus(url + "/missing?status=404"); got != 404 {
		t.Errorf("NavigateStatus = %d, want the 404 the server answered", got)
	}
	p.Navigate(url)

	if got := p.WaitText("#late", "arrived"); got != "arrived late" {
		t.Errorf("WaitText returned %q", got)
	}
	p.WaitGone("#leaving", "")
	if p.Has("#leaving") {
		t.Error("#leaving is still there after WaitGone")
	}
	p.WaitVisible("#go")

	p.Type("name", "demo")
	p.Type("vcpus", "4") // replaces the prefilled 2
	p.Select("image", "agents")
	if got := p.Value("vcpus"); got != "4" {
		t.Errorf("vcpus = %q after Type, want 4 (the old value replaced)", got)
	}
	p.ClickText("button", "Create")
	if got := p.WaitText("#out", "name="); got != "name=demo vcpus=4 image=agents" {
		t.Errorf("the form submitted %q", got)
	}
	if d := p.Dialogs(); !slices.Equal(d, []string{"Create the VM?"}) {
		t.Errorf("dialogs = %q, want the confirmation", d)
	}

	p.TypeIn("form", "name", "demo2")
	if got := p.ValueIn("form", "name"); got != "demo2" {
		t.Errorf("ValueIn after TypeIn = %q", got)
	}
	if got := p.ValueIn("#out", "name"); got != "" {
		t.Errorf("ValueIn of a form without the field = %q", got)
	}
	p.Press(`[name=term]`, "hi\r")
	if got := p.WaitText("#keys", "Enter"); got != "[h][i][Enter]" {
		t.Errorf("keys the page saw: %q", got)
	}
	p.Press(`[name=term2]`, "ab\r")
	if got := p.WaitText("#keys2", "Enter"); got != "[a][b][Enter]" {
		t.Errorf("keys a page that cancels its keydowns saw: %q, want each once", got)
	}
	p.Click("#go")
	if got := p.Location(); !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Errorf("Location = %q", got)
	}
	p.WaitTrue("two option elements", `document.querySelectorAll("option").length === 2`)
	var sum int
	p.Eval(`Promise.resolve(40 + 2)`, &sum)
	if sum != 42 {
		t.Errorf("Eval of a promise = %d", sum)
	}

	// The console: the page's own message and its uncaught exception.
	waitConsole(t, p, "hello from the page", "boom from the page")
}

func waitConsole(t *testing.T, p *Page, want ...string) {
	t.Helper()
	deadline := time.Now().Add(DefaultTimeout)
	for {
		all := strings.Join(p.Console(), "\n")
		missing := ""
		for _, w := range want {
			if !strings.Contains(all, w) {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("console lacks %q:\n%s", missing, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A step that waits for what never comes fails after its guard with what
// it waited for and what the page showed, instead of hanging the test.
func TestHangGuard(t *testing.T) {
	p := New(t, Options{})
	p.Navigate(serve(t))
	q := p.Within(300 * time.Millisecond)
	cases := []struct {
		name string
		step func() error
		want []string
	}{
		{"text", func() error { _, err := q.waitText("#late", "never"); return err }, []string{`["never"]`, "#late", "hang guard"}},
		{"visible", func() error { return q.waitVisible("#absent") }, []string{"#absent", "hang guard"}},
		{"gone", func() error { return q.waitGone("button", "Create") }, []string{"Create", "hang guard"}},
		{"click", func() error { return q.clickText("button", "Delete") }, []string{"Delete", "hang guard"}},
		{"type", func() error { return q.typeInto("missing", "x") }, []string{"missing", "hang guard"}},
		{"true", func() error { return q.waitTrue(`document.title === "other"`) }, []string{"hang guard"}},
		{"exception", func() error { return q.waitTrue(`undefinedThing.x`) }, []string{"hang guard", "undefinedThing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.step()
			if err == nil {
				t.Fatal("the step succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// failEnv makes TestDeliberateFailure run (and fail), for
// TestFailureLeavesArtifacts, which runs it in a child process.
const failEnv = "BROWSERTEST_DELIBERATE_FAILURE"

func TestDeliberateFailure(t *testing.T) {
	if os.Getenv(failEnv) == "" {
		t.Skip("runs only as TestFailureLeavesArtifacts' child")
	}
	p := New(t, Options{Timeout: 2 * time.Second})
	p.Navigate(serve(t))
	p.WaitText("#late", "arrived")
	p.WaitText("#out", "a result that never comes")
}

// A failed browser test leaves a screenshot, the page, its console log and
// the browser's output where EnvOut says, and prints the path.
func TestFailureLeavesArtifacts(t *testing.T) {
	if _, err := Chromium(); err != nil {
		t.Skip(err.Error())
	}
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeliberateFailure$", "-test.v")
	cmd.Env = append(os.Environ(), failEnv+"=1", EnvOut+"="+out)
	b, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the deliberate failure passed:\n%s", b)
	}
	dir := filepath.Join(out, "TestDeliberateFailure")
	for _, want := range []string{"a result that never comes", "hang guard", "browser artifacts (screenshot, page, console log): " + dir} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the failure's output lacks %q:\n%s", want, b)
		}
	}
	shot, err := os.ReadFile(filepath.Join(dir, "screenshot.png"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width != 1280 || cfg.Height != 800 {
		t.Errorf("screenshot.png: %dx%d, %v; want a 1280x800 PNG", cfg.Width, cfg.Height, err)
	}
	for file, want := range map[string]string{
		"console.log": "hello from the page",
		"page.html":   "arrived late",
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q (%v):\n%s", file, want, err, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "console.log")); !bytes.Contains(b, []byte("boom from the page")) {
		t.Errorf("console.log lacks the page's exception:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "chromium.log")); err != nil {
		t.Error(err)
	}
}

func TestOutDir(t *testing.T) {
	t.Run("env", func(t *testing.T) {
		t.Setenv(EnvOut, "/var/tmp/webtest")
		if got, want := OutDir(t), "/var/tmp/webtest/TestOutDir_env"; got != want {
			t.Errorf("OutDir = %q, want %q", got, want)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Setenv(EnvOut, "")
		wd, _ := os.Getwd()
		if got, want := OutDir(t), filepath.Join(wd, "testdata", "out", "TestOutDir_default"); got != want {
			t.Errorf("OutDir = %q, want %q", got, want)
		}
	})
}

func TestChromiumNamedByEnv(t *testing.T) {
	t.Setenv(EnvChromium, "/nonexistent/chromium")
	_, err := Chromium()
	if err == nil || !strings.Contains(err.Error(), EnvChromium+"=/nonexistent/chromium") {
		t.Errorf("Chromium() = %v, want an error naming %s", err, EnvChromium)
	}
	t.Setenv(EnvChromium, "/bin/true")
	if got, err := Chromium(); err != nil || got != "/bin/true" {
		t.Errorf("Chromium() = %q, %v", got, err)
	}
}

// Options.Netns: the browser runs inside a test namespace and reaches a
// server on that namespace's loopback, which the host's loopback does not
// have.
func TestNetns(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	ns := newNetns(t)
	ln := listenIn(t, ns)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<p id="where">inside the namespace</p>`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/"
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Skipf("the host's loopback also answers on %s; pick another run", ln.Addr())
	}

	p := New(t, Options{Netns: ns})
	p.Navigate(url)
	p.WaitText("#where", "inside the namespace")
}

// newNetns makes a network namespace with loopback up, removed at the end.
func newNetns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "banger-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	return name
}

// listenIn opens a TCP listener on 127.0.0.1 inside the namespace: the
// socket stays in the namespace it was made in.
func listenIn(t *testing.T, name string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked (and so ends with the goroutine)
		// unless it is back in the host's namespace.
		orig, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(name)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening in %s: %v", name, r.err)
	}
	return r.ln
}
