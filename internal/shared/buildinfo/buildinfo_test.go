package buildinfo

import (
	"os"
	"path/filepath"
	"testing"
)

// FileDigest is the first 8 bytes (16 hex digits) of the file's sha256.
func TestFileDigest(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "abc", content: "abc", want: "ba7816bf8f01cfea"},
		{name: "empty", content: "", want: "e3b0c44298fc1c14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bin")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := FileDigest(path)
			if err != nil || got != tt.want {
				t.Errorf("FileDigest = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := FileDigest(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("FileDigest of a missing file succeeded")
	}
}
