package agentproto

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// memAgent is a full agent that also reports its memory.
type memAgent struct {
	opsHandler
	mem MemInfo
}

func (m *memAgent) MemInfo(context.Context) (MemInfo, error) { return m.mem, nil }

// meminfo is served by a MemInfoer, and refused as an unknown method by an
// agent that predates it, full or health-only, so the host can tell
// "unknown" from "failed".
func TestCallMemInfo(t *testing.T) {
	tests := []struct {
		name    string
		h       Handler
		want    any
		unknown bool
	}{
		{"reports", &memAgent{mem: MemInfo{TotalBytes: 1 << 30, AvailableBytes: 1 << 29}}, MemInfo{TotalBytes: 1 << 30, AvailableBytes: 1 << 29}, false},
		{"full agent without it", &opsHandler{}, nil, true},
		{"health only", healthOnly{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Call(context.Background(), tt.h, MethodMemInfo, nil)
			if errors.Is(err, ErrUnknownMethod) != tt.unknown {
				t.Fatalf("err = %v, want unknown method: %v", err, tt.unknown)
			}
			if !tt.unknown && got != tt.want {
				t.Errorf("result = %#v, want %#v", got, tt.want)
			}
		})
	}
	b, _ := json.Marshal(MemInfo{TotalBytes: 2, AvailableBytes: 1})
	if want := `{"total_bytes":2,"available_bytes":1}`; string(b) != want {
		t.Errorf("wire shape %s, want %s", b, want)
	}
}
