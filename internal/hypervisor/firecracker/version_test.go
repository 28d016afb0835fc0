package firecracker

import (
	"context"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/hypervisor/firecracker/fctest"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    SemVer
		wantErr bool
	}{
		{in: "Firecracker v1.10.1\n\n", want: SemVer{1, 10, 1, ""}},
		{in: "Firecracker v1.4.1\n\nSupported snapshot data format versions: v1.0.0\n", want: SemVer{1, 4, 1, ""}},
		{in: "Firecracker v1.17.0-dev\n", want: SemVer{1, 17, 0, "dev"}},
		{in: "v1.2.0", want: SemVer{1, 2, 0, ""}},
		{in: "1.13.2", want: SemVer{1, 13, 2, ""}},
		{in: "Firecracker 1.x", wantErr: true},
		{in: "qemu-system-x86_64 version 7.2.0", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v (error %t)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSemVerCompare(t *testing.T) {
	ordered := []SemVer{{0, 25, 2, ""}, {1, 1, 0, ""}, {1, 4, 0, ""}, {1, 10, 1, ""}, {1, 13, 0, "dev"}, {1, 13, 0, ""}, {1, 13, 1, ""}, {2, 0, 0, ""}}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestVersionRunsTheBinary(t *testing.T) {
	bin := fctest.FakeBinary(t, fctest.Config{Version: "1.12.1"})
	v, err := Version(context.Background(), bin)
	if err != nil || v != (SemVer{1, 12, 1, ""}) {
		t.Errorf("Version = %v, %v", v, err)
	}
	if _, err := Version(context.Background(), "/bin/false"); err == nil {
		t.Error("Version of /bin/false succeeded")
	}
	if _, err := New("/nonexistent/firecracker", nil); err == nil || !strings.Contains(err.Error(), "install Firecracker") {
		t.Errorf("New with a missing binary = %v", err)
	}
}
