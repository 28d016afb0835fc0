package tui

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// Commits of the workspace the diff tests send: the host's HEAD and what
// was sent.
const (
	testHead = "0123456789abcdef0123456789abcdef01234567"
	testSent = "89abcdef0123456789abcdef0123456789abcdef"
)

// hostileChanges is a guest's account of its work with escape sequences
// in a path, a commit subject and its author: a window title (OSC 0) and
// a screen clear.
var hostileChanges = agentproto.Changes{
	Base: testSent,
	Head: "fedcba9876543210fedcba9876543210fedcba98",
	Work: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	Commits: []agentproto.ChangedCommit{
		{ID: "fedcba9876543210fedcba9876543210fedcba98", Subject: "add the parser\x1b]0;pwned\x07", Author: "Agent \x1b[2J", Time: time.Unix(1_700_000_000, 0)},
		{ID: "1111111111111111111111111111111111111111", Subject: "first step", Author: "Agent", Time: time.Unix(1_700_000_000, 0)},
	},
	Files: []agentproto.ChangedFile{
		{Path: "README.md", Status: "modified", Added: 3, Deleted: 1},
		{Path: "evil\x1b]0;pwned\x07.txt", Status: "added", Added: 1},
		{Path: "logo.png", Status: "added", Binary: true},
		{Path: "src/new.go", OldPath: "src/old.go", Status: "renamed", Added: 12, Deleted: 10},
	},
}

const hostilePatch = "diff --git a/README.md b/README.md\n" +
	"--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,4 @@\n banger\n-old line\n+new line\x1b]0;pwned\x07\n+\ttabbed\n" +
	"diff --git a/evil\x1b[2J.txt b/evil\x1b[2J.txt\n"

// diffDaemon runs a fake daemon whose guests answer vm diff with ws, and
// VMs "demo" (its workspace sent from /home/me/proj) and "bare"
// (nothing sent).
func diffDaemon(t *testing.T, ws *hvtest.FakeWorkspace) *daemontest.Daemon {
	t.Helper()
	d := daemontest.Start(t, daemontest.Options{Fake: true})
	d.Fake.Transfers = ws
	d.CreateVM(t, api.CreateVMRequest{Name: "bare"})
	d.CreateVM(t, api.CreateVMRequest{Name: "demo"})
	_, err := d.Client.PrepareWorkspace(context.Background(), "demo", api.PrepareWorkspaceRequest{
		Mode: api.WorkspaceGit, HostPath: "/home/me/proj", Head: testHead, Sent: testSent,
	}, strings.NewReader("a tar stream the fake guest discards"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rawScreen fails the test when the screen, as sent to the terminal,
// carries one of the guest's escape sequences.
func rawScreen(t *testing.T, h *harness) {
	t.Helper()
	raw := h.app.Screen()
	for _, bad := range []string{"\x1b]0;", "\x07", "\x1b[2J"} {
		if strings.Contains(raw, bad) {
			t.Errorf("the screen carries the guest's %q raw:\n%q", bad, raw)
		}
	}
}

// D opens a VM's diff from the table: its summary shows where it came
// from, the guest's commits, the uncommitted flag and a table of the
// files, with the guest's escape sequences shown as \x1b; p shows the
// patch, escaped and scrollable, and back; r asks again; esc leaves.
func TestVMDiffSummaryAndPatch(t *testing.T) {
	ws := &hvtest.FakeWorkspace{Changes: hostileChanges, Patch: hostilePatch}
	d := diffDaemon(t, ws)
	h := newHarness(t, fakeOptions(d))
	h.waitText("bare", "demo")
	h.key("down")
	h.key("D")
	h.waitText("2 commits in the guest", `evil\x1b]0;pwned\x07.txt`, `add the parser\x1b]0;pwned\x07`, `Agent \x1b[2J`)
	h.settle()
	rawScreen(t, h)
	h.golden("diff-summary")

	h.key("p")
	h.waitText("+new line", `\x1b]0;pwned\x07`, `evil\x1b[2J.txt`)
	h.settle()
	rawScreen(t, h)
	h.golden("diff-patch")

	h.key("p")
	h.waitText("4 files changed, 16 insertions(+), 11 deletions(-)")

	ws.Changes.Files = ws.Changes.Files[:1]
	ws.Changes.Commits = nil
	h.key("r")
	h.waitText("no commits in the guest", "1 file changed")

	var formats []string
	for _, r := range ws.Requests() {
		var p agentproto.ChangesParams
		if r.Op != agentproto.OpChanges {
			continue
		}
		if err := json.Unmarshal(r.Params, &p); err != nil {
			t.Fatal(err)
		}
		if p.Base != testSent || r.Path != agentproto.WorkspaceDir {
			t.Errorf("the guest was asked for the changes of %s since %s, want %s since %s", r.Path, p.Base, agentproto.WorkspaceDir, testSent)
		}
		formats = append(formats, p.Format)
	}
	// The refresh, with the summary on screen, read only the summary.
	if diff := cmp.Diff([]string{"summary", "patch", "summary"}, formats); diff != "" {
		t.Errorf("the guest's gets (-want +got):\n%s", diff)
	}

	// The patch shown after a refresh is read again.
	h.key("p")
	h.waitText("+new line")
	if n := len(ws.Requests()); n != 5 { // the put and four gets
		t.Errorf("%d requests reached the guest, want 5: %+v", n, ws.Requests())
	}

	h.key("esc")
	h.waitText(">demo")
}

// From the detail, D opens the diff and esc comes back to the detail.
func TestVMDiffFromDetail(t *testing.T) {
	d := diffDaemon(t, &hvtest.FakeWorkspace{Changes: agentproto.Changes{Base: testSent, Head: testSent}})
	h := newHarness(t, fakeOptions(d))
	h.waitText("bare", "demo")
	h.key("down")
	h.key("enter")
	h.waitText("VM demo", "D diff")
	h.key("D")
	h.waitText("nothing changed since it was sent")
	h.key("p")
	h.waitText("the patch is empty")
	h.key("esc")
	h.waitText("[Overview]")
}

// A VM into which nothing was sent shows the daemon's error, which says
// how to send one.
func TestVMDiffNothingSent(t *testing.T) {
	d := diffDaemon(t, &hvtest.FakeWorkspace{})
	h := newHarness(t, fakeOptions(d))
	h.waitText("bare", "demo")
	h.key("D")
	h.waitText("nothing was sent into the workspace of VM bare", "vm workspace prepare bare [PATH]")
	h.settle()
	h.golden("diff-nothing-sent")
}

// A patch past maxPatchShown is cut there, and the view says so and how
// to see it whole.
func TestVMDiffPatchCut(t *testing.T) {
	line := "+" + strings.Repeat("x", 1023) + "\n"
	patch := "diff --git a/big b/big\n" + strings.Repeat(line, maxPatchShown/len(line)+8)
	d := diffDaemon(t, &hvtest.FakeWorkspace{Changes: hostileChanges, Patch: patch})
	h := newHarness(t, fakeOptions(d))
	h.waitText("bare", "demo")
	h.key("down")
	h.key("D")
	h.waitText("2 commits in the guest")
	h.key("p")
	h.waitText("cut at 8.0 MiB", "banger vm diff demo -p")
	h.key("G")
	h.waitText("+xxxx")
	if !strings.Contains(h.screen(), "cut at 8.0 MiB") {
		t.Errorf("the end of a cut patch lost its note:\n%s", h.screen())
	}
}

func TestCapWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		keep   string
		err    error
	}{
		{name: "under the cap", writes: []string{"ab", "cd"}, keep: "abcd"},
		{name: "exactly the cap", writes: []string{"abcde"}, keep: "abcde"},
		{name: "over it in one write", writes: []string{"abcdefg"}, keep: "abcde", err: errPatchCut},
		{name: "over it in the second", writes: []string{"abc", "defg"}, keep: "abcde", err: errPatchCut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &capWriter{left: 5}
			var err error
			for _, s := range tc.writes {
				if _, err = w.Write([]byte(s)); err != nil {
					break
				}
			}
			if !errors.Is(err, tc.err) || w.buf.String() != tc.keep {
				t.Errorf("kept %q, error %v; want %q, %v", w.buf.String(), err, tc.keep, tc.err)
			}
		})
	}
}

func TestPatchLinesEscape(t *testing.T) {
	got := patchLines("+a\tb\n-\x1b[31mred\r\n\u202eevil\n")
	want := []string{"+a    b", `-\x1b[31mred\r`, `\u202eevil`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("patchLines (-want +got):\n%s", diff)
	}
}
