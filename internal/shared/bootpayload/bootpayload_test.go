package bootpayload

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/shared/initramfs"
	"github.com/google/go-cmp/cmp"
)

func testKey() []byte { return bytes.Repeat([]byte{7}, KeySize) }

// baseArchive writes a one-file newc archive standing for an image's
// initramfs, with an odd length so the payload archive needs padding.
func baseArchive(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	w := initramfs.NewWriter(&b)
	if err := w.AddFile("init", 0o755, []byte("image's agent")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b.WriteString("x") // trailing junk the kernel would skip is not ours to judge
	p := filepath.Join(dir, "base.img")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteInitrdRoundTrip(t *testing.T) {
	dir := t.TempDir()
	base := baseArchive(t, dir)
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("daemon's agent"), 0o755)
	want := Payload{
		Key:            testKey(),
		Files:          []File{{Path: "/root/.claude/.credentials.json", Mode: 0o600, Data: []byte(`{"t":1}`)}},
		AuthorizedKeys: []string{"ssh-ed25519 AAAAkey banger"},
	}
	dst := filepath.Join(dir, "initrd.img")
	if err := WriteInitrd(dst, base, agent, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("initrd mode %v, want 0600 (it holds the key)", fi.Mode().Perm())
	}
	baseBytes, _ := os.ReadFile(base)
	all, _ := os.ReadFile(dst)
	if !bytes.HasPrefix(all, baseBytes) {
		t.Fatal("the image's archive is not kept unchanged at the start")
	}
	got, init, err := ReadInitrd(dst, int64(len(baseBytes)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if string(init) != "daemon's agent" {
		t.Errorf("/init = %q", init)
	}
	// The whole file parses as the kernel sees it: two archives, the
	// later /init replacing the earlier.
	r := initramfs.NewReader(bytes.NewReader(all[:len(baseBytes)-1]))
	for {
		h, err := r.Next()
		if err != nil {
			break
		}
		if h.Name == "init" {
			return
		}
	}
	t.Error("the base archive lost its /init")
}

func TestValidateRefuses(t *testing.T) {
	ok := Payload{Key: testKey()}
	tests := []struct {
		name string
		p    Payload
		want string
	}{
		{"short key", Payload{Key: []byte("k")}, "agent key is 1 bytes"},
		{"relative path", Payload{Key: ok.Key, Files: []File{{Path: "root/x", Mode: 0o600}}}, "must be absolute"},
		{"outside /root", Payload{Key: ok.Key, Files: []File{{Path: "/etc/shadow", Mode: 0o600}}}, "not below /root"},
		{"dot-dot", Payload{Key: ok.Key, Files: []File{{Path: "/root/../etc/x", Mode: 0o600}}}, "must be absolute and clean"},
		{"home itself", Payload{Key: ok.Key, Files: []File{{Path: "/root", Mode: 0o600}}}, "not below /root"},
		{"setuid", Payload{Key: ok.Key, Files: []File{{Path: "/root/x", Mode: 0o4755}}}, "more than permission bits"},
		{"two-line key", Payload{Key: ok.Key, AuthorizedKeys: []string{"ssh-ed25519 A\nssh-rsa B"}}, "one non-empty line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
			dst := filepath.Join(t.TempDir(), "initrd.img")
			if err := WriteInitrd(dst, "/nonexistent", "/nonexistent", tt.p); err == nil {
				t.Error("WriteInitrd accepted it")
			}
			if _, err := os.Stat(dst); err == nil {
				t.Error("WriteInitrd left a file behind")
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("a key alone: %v", err)
	}
}

func TestLoadAndApply(t *testing.T) {
	stage, home := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(stage, KeyFile), testKey(), 0o600)
	os.WriteFile(filepath.Join(stage, PayloadFile), []byte(`{"files":[{"path":"/root/.config/pi/auth.json","mode":384,"data":"e30="}],"authorized_keys":["ssh-ed25519 AAAAnew banger"]}`), 0o600)
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), []byte("ssh-rsa AAAAold user"), 0o600)

	p, err := Load(stage)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Key, testKey()) {
		t.Errorf("key = %x", p.Key)
	}
	for range 2 { // applying twice adds the key once
		if err := Apply(p, home); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(home, ".config/pi/auth.json"))
	if err != nil || string(b) != "{}" {
		t.Errorf("auth file: %q %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(home, ".config/pi/auth.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("auth file mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(home, ".config/pi")); fi.Mode().Perm() != 0o700 {
		t.Errorf("parent mode %v", fi.Mode().Perm())
	}
	ak, _ := os.ReadFile(filepath.Join(home, ".ssh", "authorized_keys"))
	if string(ak) != "ssh-rsa AAAAold user\nssh-ed25519 AAAAnew banger\n" {
		t.Errorf("authorized_keys = %q", ak)
	}
}

func TestLoadRefusesBadPayloads(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		payload string
		want    string
	}{
		{"no key", nil, `{}`, "no such file"},
		{"long key", bytes.Repeat([]byte{1}, KeySize+5), `{}`, "agent key is 33 bytes"},
		{"bad json", testKey(), `{`, "payload.json"},
		{"escaping path", testKey(), `{"files":[{"path":"/root/../etc/passwd","mode":420}]}`, "clean"},
		{"oversized", testKey(), `{"authorized_keys":["` + strings.Repeat("a", MaxPayload) + `"]}`, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.key != nil {
				os.WriteFile(filepath.Join(dir, KeyFile), tt.key, 0o600)
			}
			os.WriteFile(filepath.Join(dir, PayloadFile), []byte(tt.payload), 0o600)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want %q", err, tt.want)
			}
		})
	}
}

// The guest owns its authorized_keys: a huge (sparse) one is refused
// without reading it whole, and left as it is.
func TestApplyRefusesAHugeAuthorizedKeys(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	ak := filepath.Join(home, ".ssh", "authorized_keys")
	f, _ := os.Create(ak)
	f.Truncate(1 << 40) // 1 TiB, sparse
	f.Close()
	err := Apply(Payload{Key: testKey(), AuthorizedKeys: []string{"ssh-ed25519 AAAAnew banger"}}, home)
	if err == nil || !strings.Contains(err.Error(), "is over") {
		t.Errorf("Apply = %v, want a refusal", err)
	}
	if fi, _ := os.Stat(ak); fi.Size() != 1<<40 {
		t.Errorf("authorized_keys changed: %d bytes", fi.Size())
	}
}

// BenchmarkWriteInitrd writes a VM's per-boot initramfs from an image
// initramfs and an agent of realistic sizes (8 MiB and 6.5 MiB, random so
// nothing compresses or dedups): the "sync auth files" stage of every
// create and start, when the payload brings the agent and when the
// image's initramfs has it already.
func BenchmarkWriteInitrd(b *testing.B) {
	dir := b.TempDir()
	rnd := func(name string, n int) string {
		p := filepath.Join(dir, name)
		buf := make([]byte, n)
		rand.Read(buf)
		if err := os.WriteFile(p, buf, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	base, agent := rnd("base.img", 8<<20), rnd("agent", 6500<<10)
	p := Payload{Key: testKey(), Files: []File{{Path: "/root/.claude/.credentials.json", Mode: 0o600, Data: []byte(`{"t":1}`)}}}
	dst := filepath.Join(dir, "initrd.img")
	for _, c := range []struct{ name, agent string }{{"payload-brings-agent", agent}, {"image-has-agent", ""}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := WriteInitrd(dst, base, c.agent, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWriteInitrdWithoutAgent: when the image's initramfs already has the
// daemon's agent as /init, the payload archive carries no /init of its
// own, so the image's stays the one the kernel runs.
func TestWriteInitrdWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	base := baseArchive(t, dir)
	p := Payload{Key: testKey()}
	dst := filepath.Join(dir, "initrd.img")
	if err := WriteInitrd(dst, base, "", p); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(base)
	got, init, err := ReadInitrd(dst, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if init != nil {
		t.Errorf("the payload archive has an /init (%d bytes); want the image's to stay", len(init))
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
}
