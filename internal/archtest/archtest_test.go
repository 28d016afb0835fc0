package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// repoRoot walks up from this package to the directory holding go.mod.
func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// packageDirs returns every directory with non-test Go files, skipping
// testdata and hidden directories.
func packageDirs(t *testing.T, root string) []string {
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (name == "testdata" || strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() && path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module (packaging/): not this one's layout
			}
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			seen[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for d := range seen {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs
}

// Every package, commands included, says in a doc comment what it owns.
func TestEveryPackageHasADocComment(t *testing.T) {
	root := repoRoot(t)
	dirs := packageDirs(t, root)
	if len(dirs) < 10 {
		t.Fatalf("found only %d packages under %s; the walk is broken", len(dirs), root)
	}
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(dir, "*.go"))
			if err != nil {
				t.Fatal(err)
			}
			var name string
			documented := false
			for _, path := range files {
				if strings.HasSuffix(path, "_test.go") {
					continue
				}
				f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments|parser.PackageClauseOnly)
				if err != nil {
					t.Fatal(err)
				}
				name = f.Name.Name
				if f.Doc == nil || strings.TrimSpace(f.Doc.Text()) == "" {
					continue
				}
				documented = true
				want := "Package " + name + " "
				if name == "main" {
					want = "Command "
				}
				if !strings.HasPrefix(f.Doc.Text(), want) {
					t.Errorf("package %s: doc comment should start with %q, got %q", name, want, firstLine(f.Doc.Text()))
				}
			}
			if !documented {
				t.Errorf("package %s in %s has no doc comment: add one saying what it owns", name, rel)
			}
		})
	}
}

// Outside the module only the wire types and the client are importable;
// everything else lives under internal/ (or is a command).
func TestOnlyAPIAndClientArePublic(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range packageDirs(t, root) {
		rel, _ := filepath.Rel(root, dir)
		top := strings.Split(rel, string(filepath.Separator))[0]
		switch top {
		case "api", "client", "internal", "cmd":
		default:
			t.Errorf("package directory %s is outside api/, client/, internal/ and cmd/: move it under internal/", rel)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
