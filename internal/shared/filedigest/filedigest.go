// Package filedigest owns the sha256 of a file's content: read as a stream
// (a disk image is never held in memory) and given as lowercase hex, the
// form banger stores in manifests and compares with published sums.
package filedigest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// SHA256 returns the lowercase hex sha256 of the file at path.
func SHA256(path string) (string, error) {
	sum, _, err := SHA256Size(path)
	return sum, err
}

// SHA256Size returns the lowercase hex sha256 of the file at path and the
// number of bytes it read, the file's size.
func SHA256Size(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
