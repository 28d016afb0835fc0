package sshkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// fileState is what a test compares to prove nothing in a directory changed.
type fileState struct {
	Mode    fs.FileMode
	ModTime time.Time
	Content string
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{Mode: fi.Mode(), ModTime: fi.ModTime()}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.Content = string(b)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeKey writes a fresh ed25519 private key to path (encrypted when
// passphrase is set) and, when withPub is set, its .pub file.
func writeKey(t *testing.T, path, passphrase string, withPub bool) ssh.PublicKey {
	t.Helper()
	pubRaw, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "user@host")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "user@host", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(pubRaw)
	if err != nil {
		t.Fatal(err)
	}
	if withPub {
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " user@host\n"
		if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return pub
}

// backdate moves the mtime of files into the past, so a rewrite, however
// fast, shows up as a changed mtime.
func backdate(t *testing.T, paths ...string) {
	t.Helper()
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, p := range paths {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureGeneratesManagedKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "banger")
	path := filepath.Join(dir, "ssh_key")

	key, err := Ensure(path, true)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}

	gotModes := map[string]fs.FileMode{
		"dir": mode(t, dir),
		"key": mode(t, path),
		"pub": mode(t, path+".pub"),
	}
	wantModes := map[string]fs.FileMode{"dir": 0o700, "key": 0o600, "pub": 0o644}
	if diff := cmp.Diff(wantModes, gotModes); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}

	if diff := cmp.Diff([]string{"ssh_key", "ssh_key.pub"}, dirNames(t, dir)); diff != "" {
		t.Errorf("directory holds leftovers (-want +got):\n%s", diff)
	}

	privPEM, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(privPEM), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Errorf("private key is not OpenSSH PEM:\n%s", privPEM)
	}
	signer, err := ssh.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatalf("parsing generated key: %v", err)
	}
	pubFile, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	want := Key{
		Path:        path,
		PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " banger",
		Fingerprint: ssh.FingerprintSHA256(signer.PublicKey()),
		Managed:     true,
	}
	if diff := cmp.Diff(want, key); diff != "" {
		t.Errorf("Key (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.PublicKey+"\n", string(pubFile)); diff != "" {
		t.Errorf(".pub content (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(key.PublicKey, "ssh-ed25519 ") || !strings.HasPrefix(key.Fingerprint, "SHA256:") {
		t.Errorf("unexpected key type or fingerprint: %+v", key)
	}
}

func TestEnsureManagedIsStable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh_key")
	first, err := Ensure(path, true)
	if err != nil {
		t.Fatal(err)
	}
	backdate(t, path, path+".pub")
	before := snapshot(t, dir)

	second, err := Ensure(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second Ensure returned another key (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("second Ensure touched files (-before +after):\n%s", diff)
	}
}

func TestEnsureManagedRepairsPublicKey(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, pubPath string)
	}{
		{"missing", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("not a key\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"another key", func(t *testing.T, p string) {
			other := filepath.Join(t.TempDir(), "other")
			writeKey(t, other, "", true)
			b, err := os.ReadFile(other + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ssh_key")
			want, err := Ensure(path, true)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, path+".pub")
			got, err := Ensure(path, true)
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Key (-want +got):\n%s", diff)
			}
			pub, err := os.ReadFile(path + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want.PublicKey+"\n", string(pub)); diff != "" {
				t.Errorf(".pub not repaired (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfiguredKeyIsOnlyRead(t *testing.T) {
	tests := []struct {
		name    string
		withPub bool
		comment string // what PublicKey ends with
	}{
		{name: "with pub", withPub: true, comment: " user@host"},
		{name: "without pub", withPub: false, comment: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "id_ed25519")
			pub := writeKey(t, path, "", tt.withPub)
			backdate(t, path)
			if tt.withPub {
				backdate(t, path+".pub")
			}
			before := snapshot(t, dir)

			for _, f := range []struct {
				name string
				call func(string) (Key, error)
			}{
				{"Ensure", func(p string) (Key, error) { return Ensure(p, false) }},
				{"Inspect", Inspect},
			} {
				got, err := f.call(path)
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				want := Key{
					Path:        path,
					PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + tt.comment,
					Fingerprint: ssh.FingerprintSHA256(pub),
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s Key (-want +got):\n%s", f.name, diff)
				}
			}
			if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
				t.Errorf("configured key touched (-before +after):\n%s", diff)
			}
		})
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name    string
		managed bool
		setup   func(t *testing.T, path string)
		want    []string // substrings of the error, "PATH" replaced by the key path
		wantIs  error
	}{
		{
			name:  "configured key missing",
			setup: func(*testing.T, string) {},
			want: []string{
				"SSH key PATH: file does not exist",
				`ssh-keygen -t ed25519 -N '' -f PATH`,
				"remove ssh_key from the config",
			},
			wantIs: fs.ErrNotExist,
		},
		{
			name:  "configured key encrypted",
			setup: func(t *testing.T, p string) { writeKey(t, p, "hunter2", true) },
			want: []string{
				"SSH key PATH is protected by a passphrase",
				"banger needs an unencrypted key",
				"remove ssh_key from the config to use banger's managed key",
			},
		},
		{
			name:    "managed key encrypted",
			managed: true,
			setup:   func(t *testing.T, p string) { writeKey(t, p, "hunter2", true) },
			want:    []string{"protected by a passphrase", "delete PATH and PATH.pub"},
		},
		{
			name:    "managed key loose permissions",
			managed: true,
			setup: func(t *testing.T, p string) {
				writeKey(t, p, "", true)
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"mode 0644", `run "chmod 600 PATH"`},
		},
		{
			name: "configured key group readable",
			setup: func(t *testing.T, p string) {
				writeKey(t, p, "", true)
				if err := os.Chmod(p, 0o640); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"mode 0640", `run "chmod 600 PATH"`},
		},
		{
			name: "configured key not a key",
			setup: func(t *testing.T, p string) {
				if err := os.WriteFile(p, []byte("hello\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"SSH key PATH is not a private key banger can read", "point ssh_key at an OpenSSH private key"},
		},
		{
			name: "configured key is a directory",
			setup: func(t *testing.T, p string) {
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"SSH key PATH is not a regular file"},
		},
		{
			name: "configured pub does not match",
			setup: func(t *testing.T, p string) {
				writeKey(t, p, "", false)
				other := filepath.Join(t.TempDir(), "other")
				writeKey(t, other, "", true)
				if err := os.Rename(other+".pub", p+".pub"); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"public key PATH.pub does not match its private key", `ssh-keygen -y -f PATH > PATH.pub`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "id_ed25519")
			tt.setup(t, path)
			before := snapshot(t, dir)

			_, err := Ensure(path, tt.managed)
			if err == nil {
				t.Fatal("Ensure succeeded, want error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "PATH", path); !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error does not wrap %v", tt.wantIs)
			}
			if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
				t.Errorf("failed Ensure touched files (-before +after):\n%s", diff)
			}
		})
	}
}

func TestEnsureUnreadableKey(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file, so an unreadable key cannot be set up; run as a normal user")
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	writeKey(t, path, "", true)
	if err := os.Chmod(path, 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(path, false)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "make it readable by the user running banger") {
		t.Fatalf("Ensure error = %v, want a permission error naming the fix", err)
	}
}

func TestInspectNeverRepairs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh_key")
	want, err := Ensure(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + ".pub"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	got, err := Inspect(path)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	want.Managed = false
	want.PublicKey = strings.TrimSuffix(want.PublicKey, " banger")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Key (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("Inspect touched files (-before +after):\n%s", diff)
	}
}

// Two banger processes racing to create the managed key must end up with one
// key, not two halves.
func TestEnsureConcurrentGeneration(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh_key")
	const n = 8
	keys := make([]Key, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := range n {
		go func() {
			keys[i], errs[i] = Ensure(path, true)
			done <- i
		}()
	}
	for range n {
		<-done
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Ensure #%d: %v", i, errs[i])
		}
		if diff := cmp.Diff(keys[0], keys[i]); diff != "" {
			t.Errorf("Ensure #%d returned another key (-first +this):\n%s", i, diff)
		}
	}
	final, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if final.PublicKey != keys[0].PublicKey {
		t.Errorf("key on disk %q, Ensure returned %q", final.PublicKey, keys[0].PublicKey)
	}
	if diff := cmp.Diff([]string{"ssh_key", "ssh_key.pub"}, dirNames(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
