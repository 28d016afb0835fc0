package workspace

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkPackExtract packs a generated 2,000-file repository and extracts
// it over the previous copy, in both modes. Bytes/op (for MB/s) is the
// files' content; tar-bytes/op is the stream.
func BenchmarkPackExtract(b *testing.B) {
	requireGit(b)
	repo := filepath.Join(b.TempDir(), "repo")
	initRepo(b, repo)
	const files, perDir = 2000, 50
	for i := range files {
		content := strings.Repeat(fmt.Sprintf("line %d of file %d\n", i%97, i), 1+i%200)
		write(b, repo, fmt.Sprintf("pkg%02d/sub/file%04d.go", i/perDir, i), content, 0o644)
	}
	write(b, repo, ".gitignore", "build/\n", 0o644)
	for i := range 200 {
		write(b, repo, fmt.Sprintf("build/obj%03d.o", i), strings.Repeat("x", 4096), 0o644)
	}
	git(b, repo, "add", ".")
	git(b, repo, "commit", "-q", "-m", "generated")

	for _, mode := range []Mode{ModeGit, ModeFullCopy} {
		b.Run(string(mode), func(b *testing.B) {
			dest := filepath.Join(b.TempDir(), "repo")
			var buf bytes.Buffer
			var st Stats
			var streamLen int
			for b.Loop() {
				buf.Reset()
				var err error
				if st, err = Pack(context.Background(), repo, mode, &buf); err != nil {
					b.Fatal(err)
				}
				streamLen = buf.Len()
				if _, err := Extract(context.Background(), &buf, dest, ExtractOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(st.Bytes)
			b.ReportMetric(float64(st.Files), "files/op")
			b.ReportMetric(float64(streamLen), "tar-bytes/op")
		})
	}
}
