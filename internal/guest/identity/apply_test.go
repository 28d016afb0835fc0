package identity

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// helperEnv makes the test binary a helper process instead (TestMain).
const helperEnv = "BANGER_IDENTITY_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "hup":
		trapHUP()
	case "bootid":
		os.Exit(bootIDChild())
	}
	os.Exit(2)
}

// trapHUP stands for sshd: it says "ready", then "hup" when it gets
// SIGHUP, and exits.
func trapHUP() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	fmt.Println("ready")
	select {
	case <-c:
		fmt.Println("hup")
		os.Exit(0)
	case <-time.After(time.Minute):
		os.Exit(3)
	}
}

// recorder is the fake clock, RNG, mounter and key of the tests: it
// records each action as a line.
type recorder struct {
	actions []string
	failOn  string // an action prefix that fails
}

func (r *recorder) do(action string) error {
	r.actions = append(r.actions, action)
	if r.failOn != "" && strings.HasPrefix(action, r.failOn) {
		return errors.New("injected failure")
	}
	return nil
}

func (r *recorder) setClock(t time.Time) error {
	return r.do("clock " + strconv.FormatInt(t.UnixNano(), 10))
}
func (r *recorder) AddEntropy(seed []byte) error {
	return r.do(fmt.Sprintf("add-entropy %d bytes %x", len(seed), seed[:4]))
}
func (r *recorder) Reseed() error { return r.do("reseed") }
func (r *recorder) Unmount(target string) (bool, error) {
	return false, r.do("unmount " + target)
}
func (r *recorder) Bind(source, target string) error { return r.do("bind " + source + " " + target) }
func (r *recorder) setKey(k []byte)                  { r.do(fmt.Sprintf("key %x", k[:4])) }

// testRoot is a guest root with an image's leftovers: an RSA host key and
// a certificate, an old ed25519 key, a hosts file naming the old host.
func testRoot(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"etc/ssh/ssh_host_rsa_key":              "old rsa private key",
		"etc/ssh/ssh_host_rsa_key.pub":          "ssh-rsa AAAAold root@template",
		"etc/ssh/ssh_host_ed25519_key":          "old ed25519 private key",
		"etc/ssh/ssh_host_ed25519_key.pub":      "ssh-ed25519 AAAAold root@template",
		"etc/ssh/ssh_host_ed25519_key-cert.pub": "old certificate",
		"etc/ssh/sshd_config":                   "PermitRootLogin prohibit-password\n",
		"etc/hostname":                          "template\n",
		"etc/hosts":                             "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate\n",
		"etc/machine-id":                        "ffffffffffffffffffffffffffffffff\n",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func testSystem(root string, r *recorder) System {
	return System{
		Root:     root,
		ProcDir:  "/proc",
		Home:     filepath.Join(root, "root"),
		SetClock: r.setClock,
		Entropy:  r,
		Mounter:  r,
		NoLink:   true,
		SetKey:   r.setKey,
	}
}

// tree lists the files below root with their modes and, for small text
// files, contents.
func tree(t *testing.T, root string) map[string]string {
	got := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, _ := d.Info()
		b, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		got[rel] = fmt.Sprintf("%v %s", info.Mode(), b)
		return nil
	})
	return got
}

func TestApplyFullCall(t *testing.T) {
	root := testRoot(t)
	sshd := startFakeSSHD(t, "sshd")
	writeFile(t, filepath.Join(root, SSHDPidFile), strconv.Itoa(sshd.pid)+"\n")
	r := &recorder{}
	id := full()
	id.Net = &agentproto.IdentityNet{Address: "10.200.0.5/24", Gateway: "10.200.0.1", MAC: "02:00:0a:c8:00:05", DNS: []string{"10.200.0.1"}}

	res, err := Apply(context.Background(), id, testSystem(root, r))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}

	bootTarget := "/proc/sys/kernel/random/boot_id"
	want := []string{
		"clock 1800000000000000000",
		"add-entropy 64 bytes 07070707",
		"reseed",
		"unmount " + bootTarget,
		"bind " + filepath.Join(root, BootIDFile) + " " + bootTarget,
		"key 09090909",
	}
	if diff := cmp.Diff(want, r.actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	files := tree(t, root)
	for name, want := range map[string]string{
		"etc/machine-id":            "-r--r--r-- 0123456789abcdef0123456789abcdef\n",
		BootIDFile:                  "-r--r--r-- 01234567-89ab-cdef-0123-456789abcdef\n",
		"etc/hostname":              "-rw-r--r-- quiet-otter\n",
		"etc/hosts":                 "-rw-r--r-- 127.0.0.1\tlocalhost\n127.0.1.1\tquiet-otter\n",
		"etc/resolv.conf":           "-rw-r--r-- # Written by banger-agent net-up from banger.dns= on the kernel command line.\nnameserver 10.200.0.1\n",
		"root/.config/tool/token":   "-rw------- t",
		"root/.ssh/authorized_keys": "-rw------- ssh-ed25519 AAAA banger\n",
		"etc/ssh/sshd_config":       "-rw------- PermitRootLogin prohibit-password\n",
	} {
		if files[name] != want {
			t.Errorf("%s: %q, want %q", name, files[name], want)
		}
	}
	for _, gone := range []string{"etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub", "etc/ssh/ssh_host_ed25519_key-cert.pub"} {
		if _, ok := files[gone]; ok {
			t.Errorf("%s is still there", gone)
		}
	}
	var wantKeys []string
	for _, kt := range []struct{ file, typ string }{{"ssh_host_ecdsa_key", "ecdsa-sha2-nistp256"}, {"ssh_host_ed25519_key", "ssh-ed25519"}} {
		wantKeys = append(wantKeys, checkHostKey(t, filepath.Join(root, "etc/ssh", kt.file), kt.typ))
	}
	if diff := cmp.Diff(wantKeys, res.HostKeys); diff != "" {
		t.Errorf("result host keys (-want +got):\n%s", diff)
	}
	if strings.Contains(strings.Join(res.HostKeys, "\n"), "AAAAold") {
		t.Errorf("the result still lists the image's keys: %q", res.HostKeys)
	}
	if got := sshd.wait(t); got != "hup" {
		t.Errorf("sshd said %q after Apply, want hup", got)
	}
}

// checkHostKey checks a generated key pair: modes, an OpenSSH private key
// that x/crypto/ssh parses, a public file matching it. It returns the
// public line.
func checkHostKey(t *testing.T, priv, typ string) string {
	t.Helper()
	for p, mode := range map[string]os.FileMode{priv: 0o600, priv + ".pub": 0o644} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), mode)
		}
	}
	b, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("%s is not in OpenSSH format: %.40q", priv, b)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("%s: %v", priv, err)
	}
	pubLine, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(pubLine)
	if err != nil {
		t.Fatalf("%s.pub: %v", priv, err)
	}
	if pub.Type() != typ || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) || comment != "root@quiet-otter" {
		t.Errorf("%s.pub: %s key %q, want the %s key of %s", priv, pub.Type(), comment, typ, priv)
	}
	return strings.TrimSpace(string(pubLine))
}

func TestApplyClockOnly(t *testing.T) {
	root := testRoot(t)
	before := tree(t, root)
	r := &recorder{}
	res, err := Apply(context.Background(), agentproto.Identity{TimeUnixNano: 42}, testSystem(root, r))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff([]string{"clock 42"}, r.actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, tree(t, root)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ssh-ed25519 AAAAold root@template", "ssh-rsa AAAAold root@template"}, res.HostKeys); diff != "" {
		t.Errorf("host keys (-want +got):\n%s", diff)
	}
}

// TestApplyRefusesBeforeChanging: a bad last field changes nothing, not
// even the clock.
func TestApplyRefusesBeforeChanging(t *testing.T) {
	root := testRoot(t)
	before := tree(t, root)
	r := &recorder{}
	id := full()
	id.Key = []byte("short")
	_, err := Apply(context.Background(), id, testSystem(root, r))
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Field != "key" {
		t.Fatalf("Apply: %v, want an *InvalidError for key", err)
	}
	if len(r.actions) != 0 {
		t.Errorf("actions taken: %q", r.actions)
	}
	if diff := cmp.Diff(before, tree(t, root)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
}

// TestApplyStopsAtFailure: a step that fails is named, the steps before
// it stay applied and the ones after it are not taken.
func TestApplyStopsAtFailure(t *testing.T) {
	tests := []struct {
		failOn, field string
		want          []string
	}{
		{"clock", "time_unix_nano", []string{"clock 1800000000000000000"}},
		{"reseed", "seed", []string{"clock 1800000000000000000", "add-entropy 64 bytes 07070707", "reseed"}},
		{"bind", "boot_id", []string{"clock 1800000000000000000", "add-entropy 64 bytes 07070707", "reseed", "unmount /proc/sys/kernel/random/boot_id", "bind"}},
	}
	for _, tt := range tests {
		t.Run(tt.failOn, func(t *testing.T) {
			root := testRoot(t)
			r := &recorder{failOn: tt.failOn}
			id := full()
			id.Net = nil
			_, err := Apply(context.Background(), id, testSystem(root, r))
			var se *StepError
			if !errors.As(err, &se) || se.Field != tt.field {
				t.Fatalf("Apply: %v, want a *StepError for %s", err, tt.field)
			}
			got := r.actions
			if n := len(got); n > 0 && strings.HasPrefix(got[n-1], "bind ") {
				got[n-1] = "bind"
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if b, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(b) != "template\n" {
				t.Errorf("hostname written after the failure: %q", b)
			}
		})
	}
}

func TestReloadSSHD(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("no true(1) to make a finished process: %v", err)
	}
	tests := []struct {
		name    string
		pidFile string // "" means none
		wantErr string
	}{
		{"no sshd", "", ""},
		{"sshd gone", strconv.Itoa(gone.Process.Pid), ""},
		{"garbage", "sshd\n", "not sshd's process ID"},
		{"init", "1\n", "not sshd's process ID"},
		{"every process", "-1\n", "not sshd's process ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := System{Root: t.TempDir(), ProcDir: "/proc"}
			if tt.pidFile != "" {
				writeFile(t, filepath.Join(sys.Root, SSHDPidFile), tt.pidFile)
			}
			err := reloadSSHD(sys)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("reloadSSHD: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestReloadSSHDOtherProcess: a pid file naming a process that is not
// sshd (a stale file, the pid reused) leaves it alone.
func TestReloadSSHDOtherProcess(t *testing.T) {
	other := startFakeSSHD(t, "not-the-daemon")
	sys := System{Root: t.TempDir(), ProcDir: "/proc"}
	writeFile(t, filepath.Join(sys.Root, SSHDPidFile), strconv.Itoa(other.pid))
	if err := reloadSSHD(sys); err != nil {
		t.Fatalf("reloadSSHD: %v", err)
	}
	// Had it been signalled it would say hup and exit; end it with
	// SIGTERM (which it does not trap) and check it never said hup.
	other.cmd.Process.Signal(syscall.SIGTERM)
	if got := other.wait(t); got == "hup" {
		t.Errorf("a process that is not sshd got SIGHUP")
	}
}

// fakeSSHD is the test binary running trapHUP under another name.
type fakeSSHD struct {
	cmd *exec.Cmd
	pid int
	out *bufio.Reader
}

// startFakeSSHD runs trapHUP as a process whose command name is name
// (through a link to the test binary) and waits until it traps SIGHUP.
func startFakeSSHD(t *testing.T, name string) *fakeSSHD {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link)
	cmd.Env = append(os.Environ(), helperEnv+"=hup")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	f := &fakeSSHD{cmd: cmd, pid: cmd.Process.Pid, out: bufio.NewReader(stdout)}
	if line, err := f.out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the fake sshd said %q (%v), want ready", line, err)
	}
	return f
}

// wait returns the fake sshd's last word once it ended.
func (f *fakeSSHD) wait(t *testing.T) string {
	rest, _ := io.ReadAll(f.out)
	f.cmd.Wait()
	return strings.TrimSpace(string(rest))
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPoolInfo(t *testing.T) {
	seed := []byte{1, 2, 3, 4, 5}
	got := poolInfo(seed)
	want := []byte{40, 0, 0, 0, 5, 0, 0, 0, 1, 2, 3, 4, 5} // little-endian hosts
	if !bytes.Equal(got, want) {
		t.Errorf("poolInfo: %v, want %v (entropy_count in bits, buf_size in bytes, buf)", got, want)
	}
}
