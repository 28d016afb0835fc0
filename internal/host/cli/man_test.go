package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/daemon"
	"github.com/bangerdev/banger/internal/host/manpage"
)

// manText undoes the roff escapes cobra/doc and md2man write, so a page's
// source can be compared with the command's help text.
var manText = strings.NewReplacer(`\fB`, "", `\fR`, "", `\fP`, "", `\fI`, "", `\-`, "-", `\(aq`, "'", `\&`, "", `\\`, `\`, "`", "")

// squash folds runs of white space, as roff refills paragraphs.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// `banger __man DIR` writes one page per command a user can run (hidden
// ones and help left out) plus bangerd's, each with the command's
// description and examples, and nothing else.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	var out, errb bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errb, Env: config.MapEnv(map[string]string{config.EnvHome: t.TempDir()})}
	if code := Run(context.Background(), []string{"__man", dir}, app); code != 0 {
		t.Fatalf("banger __man: exit %d: %s", code, errb.String())
	}

	root := newRootCmd(&App{})
	root.InitDefaultCompletionCmd()
	var cmds []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		cmds = append(cmds, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	cmds = append(cmds, manpage.Bangerd())

	var want []string
	for _, c := range cmds {
		name := manpage.PageName(c)
		want = append(want, name)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("no page for %q: %v", c.CommandPath(), err)
			}
			page := squash(manText.Replace(string(b)))
			// Long's paragraphs are separate on the page (.PP).
			texts := append([]string{c.Short, c.Example}, strings.Split(c.Long, "\n\n")...)
			for _, text := range texts {
				// A markdown heading (cobra's completion help) becomes .SS.
				text = strings.TrimLeft(text, "# ")
				if text = squash(strings.ReplaceAll(text, "`", "")); !strings.Contains(page, text) {
					t.Errorf("page lacks %q", text)
				}
			}
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(page, "--"+f.Name) {
					t.Errorf("page lacks the flag --%s", f.Name)
				}
			})
		})
	}
	var got []string
	des, _ := os.ReadDir(dir)
	for _, d := range des {
		got = append(got, d.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("pages written:\n%v\nwant:\n%v", got, want)
	}
	if strings.Contains(strings.Join(got, " "), "__man") {
		t.Error("the hidden __man command has a page")
	}

	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man is not installed (Debian: man-db): the pages are not rendered")
	}
	cmd := exec.Command(man, "-l", filepath.Join(dir, "banger-vm-create.1"))
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=100")
	rendered, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("man -l banger-vm-create.1: %v\n%s", err, rendered)
	}
	for _, want := range []string{"BANGER-VM-CREATE(1)", "NAME", "SYNOPSIS", "EXAMPLE", "banger vm create"} {
		if !strings.Contains(string(rendered), want) {
			t.Errorf("man -l output lacks %q:\n%s", want, rendered)
		}
	}
	if regexp.MustCompile(`(?m)^\.(SH|TH|EX)`).Match(rendered) {
		t.Errorf("man -l left roff requests unrendered:\n%s", rendered)
	}
}

// bangerd.1 describes the flags bangerd parses: every flag of
// `bangerd --help` is on the page's command, and no other.
func TestBangerdPageFlags(t *testing.T) {
	var help bytes.Buffer
	if code := daemon.Main([]string{"--help"}, &help, &help); code != 0 {
		t.Fatalf("bangerd --help: exit %d", code)
	}
	var fromHelp []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help.String(), -1) {
		fromHelp = append(fromHelp, m[1])
	}
	var onPage []string
	manpage.Bangerd().LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { onPage = append(onPage, f.Name) })
	slices.Sort(fromHelp)
	slices.Sort(onPage)
	if len(fromHelp) == 0 || !slices.Equal(fromHelp, onPage) {
		t.Errorf("bangerd --help has the flags %v, its man page %v:\n%s", fromHelp, onPage, help.String())
	}
}
