// Package buildinfo holds the version and build id stamped into every banger
// binary at link time, and the logic that compares them.
//
// The Makefile sets both with -ldflags "-X". The build id changes on every
// build from different sources, which is how the CLI notices that the running
// bangerd is stale after a rebuild and restarts it.
package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"github.com/bangerdev/banger/internal/shared/filedigest"
)

// Set at link time: go build -ldflags "-X github.com/bangerdev/banger/internal/shared/buildinfo.version=v0.1.0 ..."
var (
	version = "dev"
	buildID = ""
)

// Info describes one binary's build.
type Info struct {
	Version string `json:"version"`
	BuildID string `json:"build_id"`
}

var (
	fallbackOnce sync.Once
	fallbackID   string
)

// Get returns this binary's version and build id. When the build id was not
// stamped (a plain `go build`), it falls back to a digest of the running
// executable, so two different builds still never share an id.
func Get() Info {
	id := buildID
	if id == "" {
		fallbackOnce.Do(func() { fallbackID = executableDigest() })
		id = fallbackID
	}
	return Info{Version: version, BuildID: id}
}

func executableDigest() string {
	if exe, err := os.Executable(); err == nil {
		if id, err := FileDigest(exe); err == nil {
			return id
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		sum := sha256.Sum256([]byte(bi.String()))
		return hex.EncodeToString(sum[:8])
	}
	return "unknown"
}

// FileDigest returns the short content digest used as a fallback build id.
func FileDigest(path string) (string, error) {
	sum, err := filedigest.SHA256(path)
	if err != nil {
		return "", err
	}
	return sum[:16], nil // the first 8 bytes
}

// FileStamp identifies a binary's current file cheaply (size and
// modification time), so the CLI can tell whether the installed bangerd is
// still the file the running daemon started from. It is "" when the file
// cannot be read.
func FileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())
}
