package frontend

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCursors: save, load, overwrite with a shorter number, damaged
// files, names that are not path-safe, forgetting one session or a VM.
func TestCursors(t *testing.T) {
	c := testCursors(t)
	if _, ok := c.Load("demo", "ses-1"); ok {
		t.Error("a cursor that was never saved loads")
	}
	steps := []struct {
		vm, id string
		save   int64
	}{
		{"demo", "ses-1", 123456},
		{"demo", "ses-1", 7}, // shorter: no digits of the longer one left
		{"demo", "ses-2", 0},
		{"other", "../ses-1", 5}, // escaped: stays inside Dir
	}
	for _, s := range steps {
		if err := c.Save(s.vm, s.id, s.save); err != nil {
			t.Fatal(err)
		}
		if got, ok := c.Load(s.vm, s.id); !ok || got != s.save {
			t.Errorf("Load(%s, %s) = %d, %v after saving %d", s.vm, s.id, got, ok, s.save)
		}
	}
	if got, _ := c.Load("demo", "ses-1"); got != 7 {
		t.Errorf("ses-1 = %d, want 7 (the other VM's ../ses-1 must not land on it)", got)
	}
	if err := os.WriteFile(c.path("demo", "ses-2"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Load("demo", "ses-2"); ok {
		t.Error("a damaged cursor loads")
	}
	if err := c.Forget("demo", "ses-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Load("demo", "ses-1"); ok {
		t.Error("a forgotten cursor loads")
	}
	if err := c.Forget("other", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "other")); !os.IsNotExist(err) {
		t.Errorf("the VM's cursor directory survived Forget: %v", err)
	}
	if err := c.Forget("never", "seen"); err != nil {
		t.Errorf("forgetting a cursor that does not exist: %v", err)
	}
	var none *Cursors
	if _, ok := none.Load("demo", "ses-1"); ok || none.Forget("demo", "") != nil {
		t.Error("nil Cursors should load nothing and forget quietly")
	}
}
