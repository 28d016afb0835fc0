package filedigest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSHA256(t *testing.T) {
	tests := []struct {
		name    string
		content []byte // nil: no file
		dir     bool
		want    string
		wantErr error
		errText string
	}{
		// Published test vectors (FIPS 180-2 and the empty string).
		{name: "empty", content: []byte{}, want: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{name: "abc", content: []byte("abc"), want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{name: "a million a's, read as a stream", content: []byte(strings.Repeat("a", 1000000)),
			want: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
		{name: "missing file", wantErr: fs.ErrNotExist},
		{name: "a directory", dir: true, errText: "reading"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			switch {
			case tt.dir:
				os.Mkdir(path, 0o700)
			case tt.content != nil:
				if err := os.WriteFile(path, tt.content, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := SHA256(path)
			sum, n, err2 := SHA256Size(path)
			if (err == nil) != (err2 == nil) || got != sum {
				t.Fatalf("SHA256 = %q, %v but SHA256Size = %q, %v", got, err, sum, err2)
			}
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("SHA256 = %s, want %s", got, tt.want)
			}
			if n != int64(len(tt.content)) {
				t.Errorf("size = %d, want %d", n, len(tt.content))
			}
		})
	}
}
