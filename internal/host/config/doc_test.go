package config

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestPackageDoc keeps the package comment that says what config owns.
func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if doc := f.Doc.Text(); !strings.HasPrefix(doc, "Package config owns ") {
		t.Errorf("config.go package comment = %q, want one starting \"Package config owns \"", doc)
	}
}
