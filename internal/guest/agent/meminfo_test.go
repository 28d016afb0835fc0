package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

func TestMemInfo(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" reads testdata/meminfo
		want    agentproto.MemInfo
		wantErr string
	}{
		{name: "debian guest", want: agentproto.MemInfo{TotalBytes: 1004356 << 10, AvailableBytes: 843560 << 10}},
		{name: "kernel before MemAvailable", content: "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n",
			want: agentproto.MemInfo{TotalBytes: 1000 << 10, AvailableBytes: 420 << 10}},
		{name: "no MemTotal", content: "MemFree: 100 kB\n", wantErr: "no MemTotal"},
		{name: "garbage figure", content: "MemTotal: lots kB\n", wantErr: "MemTotal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata", "meminfo")
			if tt.content != "" {
				path = filepath.Join(t.TempDir(), "meminfo")
				os.WriteFile(path, []byte(tt.content), 0o644)
			}
			got, err := guestOps{meminfo: path}.MemInfo(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("meminfo (-want +got):\n%s", diff)
			}
		})
	}
}

// The agent serves meminfo as a call, from the real /proc/meminfo.
func TestMemInfoCall(t *testing.T) {
	h := &muxHandler{fullHandler: fullHandler{newHealthReporter(), guestOps{sshDir: t.TempDir()}}}
	res, err := h.Call(context.Background(), agentproto.MethodMemInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	var m agentproto.MemInfo
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.TotalBytes <= 0 || m.AvailableBytes <= 0 || m.AvailableBytes > m.TotalBytes {
		t.Errorf("meminfo of this host = %+v: want 0 < available <= total", m)
	}
}
