package uitest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/hypervisor/hvtest"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// hostileWork is a guest's account of its work written to become markup
// on a page that parsed it: a path that is an <img> with an onerror
// handler, a commit subject with a <script>, an author that closes a tag,
// and a patch holding an <svg onload>.
func hostileWork() *hvtest.FakeWorkspace {
	return &hvtest.FakeWorkspace{
		Changes: agentproto.Changes{
			Base: strings.Repeat("89abcdef", 5),
			Head: strings.Repeat("fedcba98", 5),
			Work: strings.Repeat("a", 40),
			Commits: []agentproto.ChangedCommit{
				{ID: strings.Repeat("fedcba98", 5), Subject: "fix <script>alert(2)</script> parser", Author: "Agent</span><b>bold</b>", Time: time.Now().Add(-time.Hour)},
			},
			Files: []agentproto.ChangedFile{
				{Path: "<img src=x onerror=alert(1)>.txt", Status: "added", Added: 1},
				{Path: "README.md", Status: "modified", Added: 3, Deleted: 1},
				{Path: "logo.png", Status: "added", Binary: true},
			},
		},
		Patch: "diff --git a/<img src=x onerror=alert(1)>.txt b/<img src=x onerror=alert(1)>.txt\n" +
			"new file mode 100644\n--- /dev/null\n+++ b/<img src=x onerror=alert(1)>.txt\n@@ -0,0 +1 @@\n+<svg onload=alert(3)></svg>\x1b]0;pwned\x07\n",
	}
}

// The VM page links to its workspace's changes; the diff page shows the
// guest's commits, the uncommitted flag, the files with their counts and,
// on Show patch, the patch — a hostile path, subject, author and patch
// all as text: no element is made of them, no dialog opens, the page's
// policy refuses nothing (nothing tried to run), and escapes stay visible.
func TestVMDiffPage(t *testing.T) {
	u := start(t)
	ws := hostileWork()
	u.d.Fake.Transfers = ws
	u.createVMs(api.CreateVMRequest{Name: "demo"}, api.CreateVMRequest{Name: "bare"})
	if _, err := u.d.Client.PrepareWorkspace(context.Background(), "demo", api.PrepareWorkspaceRequest{
		Mode: api.WorkspaceGit, HostPath: "/home/me/proj", Head: strings.Repeat("01234567", 5), Sent: ws.Changes.Base,
	}, strings.NewReader("the fake guest discards this")); err != nil {
		t.Fatal(err)
	}

	u.login()
	p := u.p
	p.Click(vmRow("demo") + " a")
	p.WaitText("#vm-header", "VM demo")
	p.WaitText(`#vm-spec dd[data-key="workspace"]`, "/root/repo sent from /home/me/proj at 012345670123 (git mode)")
	p.Click("#vm-diff")
	p.WaitText("#diff-header", "Changes in VM demo")
	p.WaitText("#diff-sent", "/root/repo sent from /home/me/proj")
	p.WaitText("#diff-commits", "fix <script>alert(2)</script> parser", "Agent</span><b>bold</b>")
	p.WaitText("#diff-uncommitted", "Uncommitted changes in the guest")
	p.WaitText("#diff-files", "<img src=x onerror=alert(1)>.txt", "README.md", "bin")
	p.WaitText("#diff-totals", "3 files changed, 4 insertions(+), 1 deletion(-)")

	p.Click("#diff-show-patch")
	p.WaitText("#diff-patch", "+<svg onload=alert(3)></svg>␛]0;pwned␇", "+++ b/<img src=x onerror=alert(1)>.txt")

	var made struct {
		Elements int    `json:"elements"`
		Title    string `json:"title"`
	}
	p.Eval(`({elements: document.querySelectorAll('#app img, #app script, #app svg:not(.spark), #app b, [onerror], [onload]').length, title: document.title})`, &made)
	if made.Elements != 0 {
		t.Errorf("the guest's text made %d elements on the page", made.Elements)
	}
	if made.Title == "pwned" {
		t.Error("the patch retitled the page")
	}
	if d := p.Dialogs(); len(d) != 0 {
		t.Errorf("the guest's text opened dialogs: %q", d)
	}
	for _, l := range p.Console() {
		if strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Refused to") {
			t.Errorf("something on the page tried to run and the policy refused it: %s", l)
		}
	}

	// A VM into which nothing was sent says how to send one.
	p.Navigate(u.origin + "/vm/bare/diff")
	p.WaitText("#diff-error", "nothing was sent into the workspace of VM bare", "banger vm workspace prepare bare")
}
