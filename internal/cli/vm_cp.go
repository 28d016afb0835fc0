package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/workspace"
	"github.com/spf13/cobra"
)

func newVMCpCmd(app *App) *cobra.Command {
	c := &cobra.Command{
		Use:   "cp SRC DEST",
		Short: "Copy a file or directory between the host and a VM",
		Long: `Copy one file, symlink or directory tree between the host and a running VM,
as a tar stream through the guest agent. One side is VM:PATH (an absolute
guest path), the other a host path. Modes, executable bits and symlinks are
kept; symlinks are copied as links, never followed.

Like docker cp: when DEST is an existing directory the copy goes inside it
(DEST/NAME), otherwise it becomes DEST. An existing file at the final path
is replaced; an existing directory there is never merged or removed (the
copy is refused). Nothing is written outside the final path, whatever the
stream holds.`,
		Example: `  banger vm cp ./notes.md demo:/root/
  banger vm cp ./config demo:/root/.config/tool
  banger vm cp demo:/root/repo/build/out.log ./out.log`,
		Args: exactArgs(2, "SRC DEST"),
		RunE: func(c *cobra.Command, args []string) error {
			srcVM, src, srcGuest := splitVMPath(args[0])
			dstVM, dst, dstGuest := splitVMPath(args[1])
			switch {
			case srcGuest == dstGuest:
				return usageError("vm cp copies between the host and a VM: exactly one of SRC and DEST must be VM:/PATH")
			case srcGuest && !strings.HasPrefix(src, "/"), dstGuest && !strings.HasPrefix(dst, "/"):
				return usageError("the guest path must be absolute, e.g. demo:/root/file")
			}
			cl, err := app.Client(c.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			start := time.Now()
			if dstGuest {
				res, err := pipeTar(c.Context(),
					func(w io.Writer) error { _, err := workspace.PackPath(c.Context(), src, w); return err },
					func(r io.Reader) (api.TransferResult, error) { return cl.CopyIn(c.Context(), dstVM, dst, r) })
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Stderr, "copied %s to %s:%s (%s)\n", src, dstVM, res.Path, transferSummary(res, time.Since(start)))
				return nil
			}
			var res api.TransferResult
			_, err = pipeTar(c.Context(),
				func(w io.Writer) error { return cl.CopyOut(c.Context(), srcVM, src, w) },
				func(r io.Reader) (api.TransferResult, error) {
					placed, st, err := workspace.Place(c.Context(), r, dst, workspace.ExtractOptions{})
					res = api.TransferResult{Path: placed, Files: st.Files, Dirs: st.Dirs, Symlinks: st.Symlinks, Bytes: st.Bytes}
					return res, err
				})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Stderr, "copied %s:%s to %s (%s)\n", srcVM, src, res.Path, transferSummary(res, time.Since(start)))
			return nil
		},
	}
	return c
}

// splitVMPath splits "vm:/path"; a host path has no colon before its
// first slash.
func splitVMPath(s string) (vm, path string, guest bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.Contains(s[:i], "/") {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

// pipeTar runs a tar producer and a consumer joined by a pipe. The
// producer's error wins: when packing fails the consumer sees a cut stream
// (no end-of-archive marker), refuses it and changes nothing, and the
// packing error is the one worth reporting.
func pipeTar(ctx context.Context, produce func(io.Writer) error, consume func(io.Reader) (api.TransferResult, error)) (api.TransferResult, error) {
	pr, pw := io.Pipe()
	perr := make(chan error, 1)
	go func() {
		err := produce(pw)
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		perr <- err
	}()
	res, err := consume(pr)
	pr.CloseWithError(io.ErrClosedPipe) // unblock a producer the consumer gave up on
	if e := <-perr; e != nil && e != io.ErrClosedPipe {
		return res, e
	}
	return res, err
}

// transferSummary says how much went how fast.
func transferSummary(res api.TransferResult, d time.Duration) string {
	s := fmt.Sprintf("%d files, %s", res.Files, fmtBytes(res.Bytes))
	if res.Symlinks > 0 {
		s += fmt.Sprintf(", %d symlinks", res.Symlinks)
	}
	s += " in " + fmtDuration(d)
	if secs := d.Seconds(); secs > 0 && res.Bytes > 0 {
		s += fmt.Sprintf(", %s/s", fmtBytes(int64(float64(res.Bytes)/secs)))
	}
	return s
}
