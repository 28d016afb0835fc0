package agentmux

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestHeaderJSON pins the header lines a daemon may build or splice.
func TestHeaderJSON(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"health", Header{Type: TypeHealth}, `{"type":"health"}`},
		{"put", Header{Type: TypePut, Path: "/root/repo", Op: "untar"}, `{"type":"put","path":"/root/repo","op":"untar"}`},
		{"call", Header{Type: TypeCall, Method: "session.list", Params: json.RawMessage(`{"all":true}`)}, `{"type":"call","method":"session.list","params":{"all":true}}`},
		{"attach", Header{Type: TypeAttach, Attach: &AttachRequest{Session: "web", Since: -1}}, `{"type":"attach","attach":{"session":"web","since":-1,"follow":false}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustJSON(tt.h); got != tt.want {
				t.Errorf("header %s, want %s", got, tt.want)
			}
		})
	}
}

// TestOutputFrames pins the attach output frame layout and checks that
// the host reads back what the guest wrote.
func TestOutputFrames(t *testing.T) {
	tests := []struct {
		name  string
		chunk Chunk
		want  string // hex: channel, length, stream code, offset, rest
	}{
		{
			name:  "stdout",
			chunk: Chunk{Stream: StreamStdout, Offset: 258, Data: []byte("hi")},
			want:  "09" + "0000000b" + "01" + "0000000000000102" + "6869",
		},
		{
			name:  "stderr",
			chunk: Chunk{Stream: StreamStderr, Offset: 1, Data: []byte("!")},
			want:  "09" + "0000000a" + "02" + "0000000000000001" + "21",
		},
		{
			name:  "tty without data",
			chunk: Chunk{Stream: StreamTTY, Offset: 9, Data: []byte{}},
			want:  "09" + "00000009" + "03" + "0000000000000009",
		},
		{
			name:  "gap",
			chunk: Chunk{Stream: StreamGap, Offset: 5, Dropped: 100},
			want:  "09" + "00000011" + "04" + "0000000000000005" + "0000000000000064",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := sendChunk(&frameWriter{w: &buf}, streamCodes[tt.chunk.Stream], tt.chunk); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(buf.Bytes()); got != tt.want {
				t.Errorf("frame %s, want %s", got, tt.want)
			}
			a := NewAttached(&buf)
			got, err := a.Next()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.chunk, got); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMalformedOutputFrames(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"shorter than the header", []byte{1, 0, 0}},
		{"unknown stream", append([]byte{42}, make([]byte, 8)...)},
		{"gap without a count", append([]byte{4}, make([]byte, 8)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			(&frameWriter{w: &buf}).frame(chOutput, tt.payload)
			a := NewAttached(&buf)
			if c, err := a.Next(); err == nil {
				t.Errorf("Next = %+v, want an error", c)
			}
		})
	}
}

// TestReadReplySkipsBlankLines keeps the reply reader tolerant of the
// newline a writer may put first.
func TestReadReplySkipsBlankLines(t *testing.T) {
	rep, err := readReply(bufio.NewReader(bytes.NewBufferString("\n\n{\"result\":[1]}\n")), DefaultMaxLine, "VM t")
	if err != nil || string(rep.Result) != "[1]" {
		t.Errorf("readReply = %+v, %v", rep, err)
	}
}
