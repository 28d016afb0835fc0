package provision

import (
	"context"
	"os"
	"testing"
)

func TestScratchBuild(t *testing.T) {
	if os.Getenv("BANGER_SCRATCH") == "" {
		t.Skip()
	}
	root := "/tmp/banger-scratch-root"
	Cleanup(root)
	os.RemoveAll(root)
	if err := Debootstrap(context.Background(), DebianBase("bookworm"), root, debootstrapCache(), func(s string) { t.Log(s) }); err != nil {
		t.Fatal(err)
	}
	c, err := OpenChroot(root, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := AgentsPreset{CacheDir: "/tmp/banger-test-agents-cache", OpencodeBaseline: true}
	if err := p.Apply(context.Background(), c, func(s string) { t.Log(s) }); err != nil {
		t.Fatal(err)
	}
}
