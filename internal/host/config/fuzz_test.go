package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/host/hostnet"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// sizeOracle is ParseSize's documented grammar computed with big
// integers: leading and trailing white space, ASCII digits, optional
// space, a unit of B, K, M, G, T, P or E with an optional "B" or "iB"
// in any case, every unit a power of 1024. ok is false where ParseSize
// must refuse, including a value of 8EiB or more.
func sizeOracle(s string) (n int64, ok bool) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	shift := -1
	switch unit := asciiLower(strings.TrimSpace(t[i:])); {
	case unit == "" || unit == "b":
		shift = 0
	case len(unit) <= 3:
		j := strings.IndexByte("kmgtpe", unit[0])
		if rest := unit[1:]; j >= 0 && (rest == "" || rest == "b" || rest == "ib") {
			shift = 10 * (j + 1)
		}
	}
	if shift < 0 {
		return 0, false
	}
	v, _ := new(big.Int).SetString(t[:i], 10)
	v.Lsh(v, uint(shift))
	if !v.IsInt64() {
		return 0, false
	}
	return v.Int64(), true
}

// FuzzParseSize: ParseSize agrees with sizeOracle on every string (the
// value where it accepts, a refusal where it refuses, with a message
// that quotes the input), never returns a negative size, and FormatSize
// of what it returns reads back to the same value.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{
		"0", "2048", "1k", "4KiB", "512MiB", "1024mb", " 4 gib ", "7EiB", "8EiB",
		"9223372036854775807", "9223372036854775808", "-1GiB", "1.5GiB", "8 gigs",
		"", "GiB", "0x10", "1\u212aiB", "1\tG", "00000000000000000000001T", "1iB", "1bb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSize(s)
		want, ok := sizeOracle(s)
		switch {
		case ok && err != nil:
			t.Fatalf("ParseSize(%q) = %v; want %d", s, err, want)
		case !ok && err == nil:
			t.Fatalf("ParseSize(%q) = %d; want a refusal", s, got)
		case ok && got != want:
			t.Fatalf("ParseSize(%q) = %d; want %d", s, got, want)
		case err != nil:
			if !strings.Contains(err.Error(), "size "+quoteGo(s)) {
				t.Fatalf("ParseSize(%q)'s error %q does not quote the input", s, err)
			}
			return
		}
		if got < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, got)
		}
		back, err := ParseSize(FormatSize(got))
		if err != nil || back != got {
			t.Fatalf("FormatSize(%d) = %q reads back as %d, %v", got, FormatSize(got), back, err)
		}
	})
}

// FuzzFormatSize: every size from 0 to the largest int64 renders in a
// unit that divides it exactly and reads back to itself.
func FuzzFormatSize(f *testing.F) {
	for _, n := range []int64{0, 1, 1023, 1024, 1536 << 20, 8 << 30, 7 << 60, math.MaxInt64, -1, math.MinInt64} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		s := FormatSize(n)
		if n < 0 {
			if !strings.HasPrefix(s, "-") {
				t.Fatalf("FormatSize(%d) = %q, without a minus sign", n, s)
			}
			return
		}
		back, err := ParseSize(s)
		if err != nil || back != n {
			t.Fatalf("FormatSize(%d) = %q reads back as %d, %v", n, s, back, err)
		}
		// The largest unit that divides n exactly: the next one up does not.
		for _, u := range []struct {
			suffix string
			shift  uint
		}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"PiB", 50}} {
			if strings.HasSuffix(s, u.suffix) && n != 0 && n%(1<<(u.shift+10)) == 0 {
				t.Fatalf("FormatSize(%d) = %q, but a larger unit divides it", n, s)
			}
		}
	})
}

// quoteGo is how fmt's %q quotes s.
func quoteGo(s string) string { return fmt.Sprintf("%q", s) }

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzLoad: whatever config.toml holds, Load either refuses it with a
// one-line *Error naming the file, or returns a configuration that
// passes Validate and whose rendering (TOML) loads back to the same
// configuration and renders the same again.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"",
		"hypervisor = \"qemu\"\nvm_user = \"\"\n",
		"[network]\nsubnet = \"10.0.0.1/33\"\n",
		"[network]\nsubnte = \"10.0.0.0/24\"\n",
		"[vm]\nvcpus = 4\nmemory = \"2GiB\"\ndisk = \"16GiB\"\n",
		"[vm]\nmemory = 1073741824\n",
		"auth_files = [\"~/.claude.json\", \"/tmp/tok:/root/tok\"]\n",
		"auth_files = [\"/tmp/tok:/root/My App/tok\", \"/tmp/t:/root/../etc/x\"]\n",
		"[network]\nbridge = \"tap-pool-0\"\n",
		"[copy]\nmax_size = \"64GiB\"\n",
		"[web]\nlisten = \"127.0.0.1:7180\"\n",
		"log_level = \"debug\"\ndata_dir = \"~/d\"\n",
		"network = 3\n",
		"[network\n",
		"x = \"\u0000\"\n",
		"[network]\nallow_cidrs = [\"192.168.1.0/24\"]\ntap_pool_size = 64\nbridge = \"br-test\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		env := MapEnv(map[string]string{EnvHome: filepath.Join(dir, "b"), "HOME": filepath.Join(dir, "home")})
		paths, err := DefaultPaths(env, 1000)
		if err != nil {
			t.Fatal(err)
		}
		write := func(b []byte) {
			if err := os.MkdirAll(filepath.Dir(paths.ConfigFile), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(paths.ConfigFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(data)
		c, err := Load(paths, env)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load refused %q with %T %v, not a *config.Error", data, err, err)
			}
			msg := err.Error()
			if i := strings.IndexFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
				t.Fatalf("Load's error for %q is not one line of printable text: %q", data, msg)
			}
			if !strings.HasPrefix(msg, "config "+paths.ConfigFile) {
				t.Fatalf("Load's error for %q does not name the file: %q", data, msg)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted %q but Validate refuses the result: %v", data, err)
		}
		// What the later stages refuse through their own checks must
		// have been refused here.
		for _, a := range c.AuthFiles {
			if err := bootpayload.CheckGuestPath(a.Guest); err != nil {
				t.Fatalf("Load accepted the auth file guest path %q that the boot payload refuses: %v", a.Guest, err)
			}
		}
		if err := hostnet.CheckBridge(c.Network.Bridge); err != nil {
			t.Fatalf("Load accepted network.bridge %q that the host network refuses: %v", c.Network.Bridge, err)
		}
		out, err := c.TOML()
		if err != nil {
			t.Fatalf("TOML of a loaded config (%q): %v", data, err)
		}
		write(out)
		again, err := Load(paths, env)
		if err != nil {
			t.Fatalf("the rendering of an accepted config does not load: %v\ninput:\n%s\nrendered:\n%s", err, data, out)
		}
		out2, err := again.TOML()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("render, load, render differs:\ninput:\n%s\nfirst:\n%s\nsecond:\n%s", data, out, out2)
		}
	})
}
