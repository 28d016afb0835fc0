package hvtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Ls returns the names in dir, for a test that checks what a launch left
// behind.
func Ls(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Mentioning returns the PIDs of the processes (but this one) whose
// command line contains s, for a test that checks no hypervisor stayed.
func Mentioning(s string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && e.Name() != fmt.Sprint(os.Getpid()) && bytes.Contains(b, []byte(s)) {
			found = append(found, e.Name())
		}
	}
	return found
}

// Scratch is a driver test's temporary directory: short-named, because
// unix socket paths are limited, removed when the test ends, with an
// empty runtime directory Run (0700) in it.
type Scratch struct {
	Dir, Run string
	t        *testing.T
}

// NewScratch makes a Scratch whose name starts with prefix.
func NewScratch(t *testing.T, prefix string) *Scratch {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	return &Scratch{Dir: dir, Run: run, t: t}
}

// File writes content to a file name in the scratch directory and
// returns its path.
func (s *Scratch) File(name string, content []byte) string {
	s.t.Helper()
	p := filepath.Join(s.Dir, name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}
