package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// flagFree are the packages whose errors reach every front end (the
// daemon, its managers and the client): what they say must name request
// fields, never a CLI flag, since a TUI or a web form has no flags.
var flagFree = []string{
	"client",
	"internal/host/daemon",
	"internal/host/frontend",
	"internal/host/guest",
	"internal/host/image",
	"internal/host/imagebuild",
	"internal/host/operation",
	"internal/host/vm",
}

// flagExempt are files whose flags are their own: bangerd's command line.
var flagExempt = map[string]string{
	"internal/host/daemon/main.go": "bangerd's own command line (usage text, --config, version --json)",
}

// cliFlag finds a long flag as a word: "--vcpus", "(--force)", "'--env",
// "[--name N]".
var cliFlag = regexp.MustCompile(`(^|[\s('"=\[])--[a-z]`)

// backquoted finds a command quoted for the user to run, "`banger doctor
// --deep`": naming another command's flags there is advice, not a field.
var backquoted = regexp.MustCompile("`[^`]*`")

// TestNoCLIFlagsInDaemonText: no string literal in those packages names a
// CLI flag, outside a backquoted command. Literals that are arguments of
// a program the code runs (exec.Command, exec.CommandContext) or compared
// with == or != (argv the code reads) are not text for the user, and are
// skipped.
func TestNoCLIFlagsInDaemonText(t *testing.T) {
	root := repoRoot(t)
	for _, pkg := range flagFree {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("%s: no Go files (moved? update flagFree)", pkg)
		}
		for _, file := range files {
			rel, _ := filepath.Rel(root, file)
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			if why := flagExempt[rel]; why != "" {
				// An exemption that no longer exempts anything goes.
				if len(flagLiterals(t, file)) == 0 {
					t.Errorf("%s is exempt (%s) but names no flag: drop it from flagExempt", rel, why)
				}
				continue
			}
			for _, hit := range flagLiterals(t, file) {
				t.Errorf("%s:%d: %s names a CLI flag: name the request field (api.FieldErrorf), or quote the command to run in backquotes", rel, hit.line, hit.text)
			}
		}
	}
}

type literalHit struct {
	line int
	text string
}

// flagLiterals returns the string literals of file that name a CLI flag.
func flagLiterals(t *testing.T, file string) []literalHit {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	skip := map[*ast.BasicLit]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "exec" && (sel.Sel.Name == "Command" || sel.Sel.Name == "CommandContext") {
					for _, a := range n.Args {
						if lit, ok := a.(*ast.BasicLit); ok {
							skip[lit] = true
						}
					}
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				for _, side := range []ast.Expr{n.X, n.Y} {
					if lit, ok := side.(*ast.BasicLit); ok {
						skip[lit] = true
					}
				}
			}
		}
		return true
	})
	var hits []literalHit
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING || skip[lit] {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil {
			s = lit.Value
		}
		if cliFlag.MatchString(backquoted.ReplaceAllString(s, "")) {
			hits = append(hits, literalHit{fset.Position(lit.Pos()).Line, lit.Value})
		}
		return true
	})
	return hits
}

// TestFlagLiteralsFinds: the audit finds what it must and skips what it
// may, on a sample file.
func TestFlagLiteralsFinds(t *testing.T) {
	src := "package p\n" +
		"import (\"fmt\"; \"os/exec\")\n" +
		"func f(a string) {\n" +
		"\t_ = fmt.Errorf(\"--vcpus %d is out of range\", 1)\n" + // line 4: found
		"\t_ = fmt.Errorf(\"use a smaller --disk\")\n" + // line 5: found
		"\t_ = invalid(\"--kernel\", a)\n" + // line 6: found
		"\t_ = fmt.Errorf(\"see `banger doctor --deep`\")\n" + // skipped: a command
		"\t_ = exec.Command(\"cp\", \"-a\", \"--\", a)\n" + // skipped: argv run
		"\t_ = exec.Command(\"agent\", \"version\", \"--json\")\n" + // skipped
		"\t_ = a == \"--id\"\n" + // skipped: argv read
		"\t_ = fmt.Errorf(\"vcpus 40 is out of range: use 1..64\")\n" + // clean
		"\t_ = fmt.Errorf(\"a-b--c\")\n" + // clean: not a word
		"\t_ = fmt.Sprint(`usage: x [--name N]`)\n" + // line 13: found
		"}\n"
	file := filepath.Join(t.TempDir(), "p.go")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, h := range flagLiterals(t, file) {
		lines = append(lines, h.line)
	}
	if fmt.Sprint(lines) != "[4 5 6 13]" {
		t.Errorf("found literals on lines %v, want lines [4 5 6 13]", lines)
	}
}
