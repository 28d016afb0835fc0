package manpage

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// A page is named after the command's path, words joined by dashes, as
// `man banger-vm-create` expects.
func TestPageName(t *testing.T) {
	root := &cobra.Command{Use: "banger"}
	vm := &cobra.Command{Use: "vm"}
	create := &cobra.Command{Use: "create [flags]"}
	root.AddCommand(vm)
	vm.AddCommand(create)
	tests := []struct {
		cmd  *cobra.Command
		want string
	}{
		{root, "banger.1"},
		{vm, "banger-vm.1"},
		{create, "banger-vm-create.1"},
		{Bangerd(), "bangerd.1"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := PageName(tt.cmd); got != tt.want {
				t.Errorf("PageName(%q) = %q, want %q", tt.cmd.CommandPath(), got, tt.want)
			}
		})
	}
}

// Write leaves a page per command in the directory and the header names
// banger's manual and version.
func TestWrite(t *testing.T) {
	root := &cobra.Command{Use: "banger", Short: "root", Run: func(*cobra.Command, []string) {}}
	root.AddCommand(&cobra.Command{Use: "hidden", Hidden: true, Run: func(*cobra.Command, []string) {}})
	root.AddCommand(&cobra.Command{Use: "vm", Short: "vms", Run: func(*cobra.Command, []string) {}})
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1764892800") // 2025-12-05
	files, err := Write(dir, "1.2.3", root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0] != dir+"/banger-vm.1" || files[1] != dir+"/banger.1" {
		t.Fatalf("files = %v, want banger-vm.1 and banger.1 (the hidden command has none)", files)
	}
	b, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if want := `.TH "BANGER" "1" "Dec 2025" "banger 1.2.3" "banger manual"`; !strings.Contains(string(b), want) {
		t.Errorf("banger.1 lacks the header %s:\n%s", want, b)
	}
}
