// Package browsertest drives a headless Chromium from Go tests, for the web
// UI's browser tests and its screenshots: one browser per test (started
// through chromedp over a pipe), steps that read like a user's (navigate,
// wait for a text, click, type into a field by name, press keys), each
// step bounded by a hang guard that fails the test with what it waited for
// — never a speed assertion — and, when a test fails, a screenshot, the
// page's HTML and its console log saved where CI keeps them.
//
// A host without chromium skips the test with the reason; Options.Netns
// runs the browser inside a network namespace, so it reaches a daemon's
// loopback listener there.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Environment variables a run can set.
const (
	// EnvChromium names the browser binary to use; by default the first
	// of chromium, chromium-browser, google-chrome on PATH.
	EnvChromium = "BANGER_CHROMIUM"
	// EnvOut is the directory under which a failed test leaves its
	// screenshot and console log (one subdirectory per test). By default
	// it is testdata/out in the test's package directory, which is
	// ignored by git and left in the checkout for CI to keep.
	EnvOut = "BANGER_WEBTEST_OUT"
)

// DefaultTimeout is how long one step may wait before the test fails as
// hung. It is a hang guard, generous for a loaded 2-core machine, not a
// speed requirement; Page.Within gives a step that waits for a real VM
// more.
const DefaultTimeout = 45 * time.Second

// Options tune the browser of one test.
type Options struct {
	// Width and Height are the viewport in CSS pixels; 1280×800 by
	// default.
	Width, Height int
	// Timeout bounds each step; DefaultTimeout by default.
	Timeout time.Duration
	// Netns, when set, runs the browser inside that network namespace
	// (ip netns exec), so 127.0.0.1 is the namespace's loopback.
	Netns string
}

// Page is one test's browser tab. Its methods fail the test (t.Fatal) when
// a step fails or hangs; the error-returning forms they wrap are for the
// package's own tests.
type Page struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration
	log     *consoleLog
	output  *lockedBuffer
}

// Chromium returns the browser binary tests use, or an error that says how
// to install one.
func Chromium() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s is not an executable: %v", EnvChromium, p, err)
		}
		return path, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("chromium is not installed: run scripts/install-deps.sh (apt-get install chromium), or set " + EnvChromium)
}

// New starts a headless browser for t, with an empty tab, and stops it when
// the test ends. It skips t when no browser is installed. A failed test
// leaves its artifacts under OutDir(t), and says where.
func New(t testing.TB, o Options) *Page {
	t.Helper()
	bin, err := Chromium()
	if err != nil {
		t.Skip(err.Error())
	}
	if o.Width == 0 {
		o.Width, o.Height = 1280, 800
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Netns != "" {
		bin = netnsWrapper(t, o.Netns, bin)
	}
	output := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		// The sandbox guards a desktop against hostile web content; the
		// tests load only their own pages from loopback, and chromium
		// refuses to start as root (as in CI) without this flag.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.CombinedOutput(output),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	p := &Page{t: t, ctx: ctx, timeout: o.Timeout, log: &consoleLog{}, output: output}
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout (that
	// would end the browser), so the guard runs beside it.
	started := make(chan error, 1)
	go func() {
		started <- chromedp.Do(ctx, chromedp.EmulateViewport(int64(o.Width), int64(o.Height)))
	}()
	select {
	case err = <-started:
	case <-time.After(o.Timeout):
		err = fmt.Errorf("no answer within %s", o.Timeout)
	}
	if err != nil {
		cancelTab()
		t.Fatalf("starting %s: %v\nits output:\n%s", bin, err, output.String())
	}
	p.follow()
	os.RemoveAll(OutDir(t))
	t.Cleanup(func() {
		if t.Failed() {
			dir := OutDir(t)
			if err := p.saveArtifacts(dir); err != nil {
				t.Logf("saving the browser's artifacts: %v", err)
			}
			t.Logf("browser artifacts (screenshot, page, console log): %s", dir)
		}
	})
	return p
}

// OutDir is where t's artifacts go: a directory named after the test under
// $BANGER_WEBTEST_OUT or the package's testdata/out.
func OutDir(t testing.TB) string {
	root := os.Getenv(EnvOut)
	if root == "" {
		root = filepath.Join("testdata", "out")
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	return filepath.Join(root, unsafeChars.ReplaceAllString(t.Name(), "_"))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// netnsWrapper writes a script that runs bin inside netns, for chromedp to
// start: the pipe chromedp talks over (fds 3 and 4) passes through
// `ip netns exec`, which execs the browser.
func netnsWrapper(t testing.TB, netns, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgchrome")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "chromium-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", shellQuote(netns), shellQuote(bin))
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// follow records the tab's console messages, exceptions and browser log
// entries, and accepts JavaScript dialogs (confirm, alert), recording
// their text, so a confirmation step does not block the page.
func (p *Page) follow() {
	messages := chromedp.Console(p.ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := m.String()
			if m.URL != "" {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			p.log.add(line)
		}
	}()
	dialogs := chromedp.Events(p.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			p.log.add(fmt.Sprintf("dialog %s accepted: %s", ev.Type, ev.Message))
			p.log.dialog(ev.Message)
			chromedp.Call(p.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
}

// Within returns the same tab whose steps may wait up to d (a real VM's
// boot, say).
func (p *Page) Within(d time.Duration) *Page {
	q := *p
	q.timeout = d
	return &q
}

// Console returns what the page wrote to its console so far, one line a
// message.
func (p *Page) Console() []string { return p.log.lines() }

// Dialogs returns the messages of the JavaScript dialogs the page opened
// (each was accepted).
func (p *Page) Dialogs() []string { return p.log.dialogs() }

// run runs one step under the hang guard and names it in the error.
func (p *Page) run(what string, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		return p.stepError(what, err)
	}
	return nil
}

func (p *Page) stepError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: no result within %s (hang guard)", what, p.timeout)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// eval evaluates a JavaScript expression and decodes its JSON value into
// out (nil to ignore it).
func (p *Page) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return p.stepError("evaluating "+abbrev(expr, 80), err)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	if err := p.run("navigating to "+url, chromedp.Navigate(url)); err != nil {
		p.t.Fatal(err)
	}
}

// NavigateStatus loads url like Navigate and returns the HTTP status of
// the page it ends on (after redirects).
func (p *Page) NavigateStatus(url string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.t.Fatal(p.stepError("navigating to "+url, err))
	}
	if resp == nil {
		p.t.Fatalf("navigating to %s: no response", url)
	}
	return int(resp.Status)
}

// Location is the tab's current URL.
func (p *Page) Location() string {
	p.t.Helper()
	var s string
	if err := p.eval(`location.href`, &s); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// Eval evaluates a JavaScript expression (a promise is awaited) and decodes
// its value into out, which may be nil.
func (p *Page) Eval(expr string, out any) {
	p.t.Helper()
	if err := p.eval(expr, out); err != nil {
		p.t.Fatal(err)
	}
}

// Text returns the rendered text (innerText) of the first element matching
// the CSS selector, and "" when none does.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	s, err := p.text(sel)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

func (p *Page) text(sel string) (string, error) {
	var s string
	err := p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : "" })()`, jsString(sel)), &s)
	return s, err
}

// Has reports whether an element matches the CSS selector now.
func (p *Page) Has(sel string) bool {
	p.t.Helper()
	var ok bool
	if err := p.eval(fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)), &ok); err != nil {
		p.t.Fatal(err)
	}
	return ok
}

// WaitText waits until the text of the first element matching sel contains
// every one of texts, and returns that text. The page changing under it
// (live updates, a navigation) is expected: it looks again every 100ms.
func (p *Page) WaitText(sel string, texts ...string) string {
	p.t.Helper()
	s, err := p.waitText(sel, texts...)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

func (p *Page) waitText(sel string, texts ...string) (string, error) {
	var last string
	err := p.poll(func() (bool, error) {
		s, err := p.text(sel)
		if err != nil {
			return false, err
		}
		last = s
		for _, want := range texts {
			if !strings.Contains(s, want) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		if last == "" {
			last = "(nothing: no such element, or no text)"
		}
		return last, fmt.Errorf("waiting for %q in %s: %w; it shows:\n%s", texts, sel, err, abbrev(last, 2000))
	}
	return last, nil
}

// WaitGone waits until no element matching sel contains text ("" means:
// until no element matches sel at all).
func (p *Page) WaitGone(sel, text string) {
	p.t.Helper()
	if err := p.waitGone(sel, text); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) waitGone(sel, text string) error {
	expr := fmt.Sprintf(`![...document.querySelectorAll(%s)].some(e => e.innerText.includes(%s))`, jsString(sel), jsString(text))
	err := p.poll(func() (bool, error) {
		var gone bool
		err := p.eval(expr, &gone)
		return gone, err
	})
	if err != nil {
		return fmt.Errorf("waiting for %q to leave %s: %w", text, sel, err)
	}
	return nil
}

// WaitTrue waits until the JavaScript expression expr is true; what says
// what it waits for, in the failure.
func (p *Page) WaitTrue(what, expr string) {
	p.t.Helper()
	if err := p.waitTrue(expr); err != nil {
		p.t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (p *Page) waitTrue(expr string) error {
	return p.poll(func() (bool, error) {
		var ok bool
		err := p.eval("!!("+expr+")", &ok)
		return ok, err
	})
}

// WaitVisible waits until an element matching sel is rendered (it has a
// layout box and is not hidden).
func (p *Page) WaitVisible(sel string) {
	p.t.Helper()
	if err := p.waitVisible(sel); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) waitVisible(sel string) error {
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden" })()`, jsString(sel))
	err := p.poll(func() (bool, error) {
		var ok bool
		err := p.eval(expr, &ok)
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to show: %w", sel, err)
	}
	return nil
}

// poll calls check every 100ms until it reports true, fails, or the step's
// hang guard runs out. A page that is navigating cannot evaluate for a
// moment; such an error is retried, not fatal.
func (p *Page) poll(check func() (bool, error)) error {
	deadline := time.Now().Add(p.timeout)
	var lastErr error
	for {
		ok, err := check()
		if err == nil && ok {
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("not within %s (hang guard); last error: %v", p.timeout, lastErr)
			}
			return fmt.Errorf("not within %s (hang guard)", p.timeout)
		}
		select {
		case <-p.ctx.Done():
			return fmt.Errorf("the browser went away: %w", context.Cause(p.ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Click waits until an element matching sel is visible and clicks its
// centre with the mouse.
func (p *Page) Click(sel string) {
	p.t.Helper()
	if err := p.click(sel); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) click(sel string) error {
	if err := p.waitVisible(sel); err != nil {
		return err
	}
	return p.run("clicking "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// ClickText clicks the first visible element matching sel whose text
// contains text: a button or link by its label.
func (p *Page) ClickText(sel, text string) {
	p.t.Helper()
	if err := p.clickText(sel, text); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) clickText(sel, text string) error {
	// Mark the element, then click it through the mouse like any other.
	const mark = "data-browsertest-click"
	expr := fmt.Sprintf(`(() => {
		document.querySelectorAll("[%[3]s]").forEach(e => e.removeAttribute(%[4]s));
		const e = [...document.querySelectorAll(%[1]s)].find(e => e.getClientRects().length > 0 && e.innerText.includes(%[2]s));
		if (!e) return false;
		e.setAttribute(%[4]s, "");
		return true;
	})()`, jsString(sel), jsString(text), mark, jsString(mark))
	err := p.poll(func() (bool, error) {
		var ok bool
		err := p.eval(expr, &ok)
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("waiting for %s with %q to click: %w", sel, text, err)
	}
	return p.run(fmt.Sprintf("clicking %s %q", sel, text), chromedp.Click(chromedp.CSS("["+mark+"]"), chromedp.NodeVisible))
}

// fieldSelector is the CSS selector of the form field named name.
func fieldSelector(name string) string { return fmt.Sprintf(`[name=%s]`, jsString(name)) }

// Type replaces the value of the field named name (an input or textarea)
// with text, typed as key presses, so the page's input handlers run as
// for a user.
func (p *Page) Type(name, text string) {
	p.t.Helper()
	if err := p.typeInto(name, text); err != nil {
		p.t.Fatal(err)
	}
}

// TypeIn is Type for the field named name inside the element matching
// form (a page with two forms that both have a field of that name).
func (p *Page) TypeIn(form, name, text string) {
	p.t.Helper()
	if err := p.typeSel(form+" "+fieldSelector(name), text); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) typeInto(name, text string) error { return p.typeSel(fieldSelector(name), text) }

func (p *Page) typeSel(sel, text string) error {
	if err := p.waitVisible(sel); err != nil {
		return err
	}
	clear := fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.focus(); e.select && e.select(); e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true})); return true })()`, jsString(sel))
	if err := p.eval(clear, nil); err != nil {
		return err
	}
	return p.run(fmt.Sprintf("typing into %s", sel), chromedp.Focus(chromedp.CSS(sel), chromedp.NodeVisible), keyPresses(text))
}

// Select chooses value in the select field named name, as a user's choice
// does (input and change events).
func (p *Page) Select(name, value string) {
	p.t.Helper()
	sel := fieldSelector(name)
	if err := p.waitVisible(sel); err != nil {
		p.t.Fatal(err)
	}
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return e.value })()`, jsString(sel), jsString(value))
	var got string
	if err := p.eval(expr, &got); err != nil {
		p.t.Fatal(err)
	}
	if got != value {
		p.t.Fatalf("select %s has no option %q (value is %q)", sel, value, got)
	}
}

// Value returns the current value of the field named name ("" when there
// is none).
func (p *Page) Value(name string) string {
	p.t.Helper()
	return p.valueOf(fieldSelector(name))
}

// ValueIn is Value for the field named name inside the element matching
// form.
func (p *Page) ValueIn(form, name string) string {
	p.t.Helper()
	return p.valueOf(form + " " + fieldSelector(name))
}

func (p *Page) valueOf(sel string) string {
	p.t.Helper()
	var s string
	if err := p.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? String(e.value) : "" })()`, jsString(sel)), &s); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// Press sends key presses to the element that has the focus ("\r" is
// Enter). With sel, it focuses that element first (a terminal's hidden
// textarea, say).
func (p *Page) Press(sel, keys string) {
	p.t.Helper()
	steps := []chromedp.Action[chromedp.Void]{}
	if sel != "" {
		// A terminal's textarea is present but not visible: wait for the
		// element, not for its box.
		err := p.poll(func() (bool, error) {
			var ok bool
			err := p.eval(fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)), &ok)
			return ok, err
		})
		if err != nil {
			p.t.Fatalf("waiting for %s to press keys in: %v", sel, err)
		}
		steps = append(steps, chromedp.Focus(chromedp.CSS(sel)))
	}
	steps = append(steps, keyPresses(keys))
	if err := p.run(fmt.Sprintf("pressing %q", keys), steps...); err != nil {
		p.t.Fatal(err)
	}
}

// keyPresses types keys into the focused element as a keyboard does: per
// key one keyDown that carries its text, then a keyUp. (chromedp.KeyEvent
// sends the text in a separate char event, which a page that handles the
// keydown itself and cancels it, as xterm.js does, receives a second
// time: "echo" arrives as "eecchhoo".)
func keyPresses(keys string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range keys {
			events := kb.Encode(r)
			var down, up *input.DispatchKeyEventParams
			text, unmodified := "", ""
			for _, ev := range events {
				switch ev.Type {
				case input.DispatchKeyEventTypeKeyDown:
					down = ev
				case input.DispatchKeyEventTypeKeyUp:
					up = ev
				case input.DispatchKeyEventTypeChar:
					text, unmodified = ev.Text, ev.UnmodifiedText
				}
			}
			if down == nil || up == nil {
				return fmt.Errorf("no key events for %q", r)
			}
			down.Text, down.UnmodifiedText = text, unmodified
			for _, ev := range []*input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *ev); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Screenshot saves a PNG of the viewport at path.
func (p *Page) Screenshot(path string) {
	p.t.Helper()
	if err := p.screenshot(path); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) screenshot(path string) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return p.stepError("screenshot", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// saveArtifacts writes what a reader of a failed test needs into dir:
// screenshot.png, page.html (the DOM as it stands), console.log (the
// page's console, exceptions, dialogs and browser log) and chromium.log
// (the browser's own output).
func (p *Page) saveArtifacts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The test may have failed because the page hung: the artifacts get
	// their own short guard.
	q := p.Within(15 * time.Second)
	var errs []error
	errs = append(errs, q.screenshot(filepath.Join(dir, "screenshot.png")))
	var html, url string
	if err := q.eval(`document.documentElement.outerHTML`, &html); err != nil {
		errs = append(errs, err)
	}
	q.eval(`location.href`, &url)
	errs = append(errs, os.WriteFile(filepath.Join(dir, "page.html"), []byte("<!-- "+url+" -->\n"+html), 0o644))
	console := strings.Join(p.Console(), "\n")
	if console == "" {
		console = "(the page wrote nothing to its console)"
	}
	errs = append(errs, os.WriteFile(filepath.Join(dir, "console.log"), []byte(console+"\n"), 0o644))
	errs = append(errs, os.WriteFile(filepath.Join(dir, "chromium.log"), []byte(p.output.String()), 0o644))
	return errors.Join(errs...)
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// consoleLog is what the page said, kept for the failure artifacts.
type consoleLog struct {
	mu    sync.Mutex
	all   []string
	diags []string
}

func (l *consoleLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, line)
}

func (l *consoleLog) dialog(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.diags = append(l.diags, msg)
}

func (l *consoleLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

func (l *consoleLog) dialogs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.diags...)
}

// lockedBuffer collects the browser's output from its reader goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
