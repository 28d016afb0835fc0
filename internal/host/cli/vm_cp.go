package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/config"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/bangerdev/banger/internal/shared/workspace"
	"github.com/spf13/cobra"
)

func newVMCpCmd(app *App) *cobra.Command {
	var (
		force, outsideLinks bool
		maxBytes            string
	)
	c := &cobra.Command{
		Use:   "cp SRC DEST",
		Short: "Copy a file or directory between the host and a VM",
		Long: `Copy one file, symlink or directory tree between the host and a running VM,
as a tar stream through the guest agent. One side is VM:PATH (an absolute
guest path), the other a host path. Modes, executable bits and symlinks are
kept; symlinks are copied as links, never followed.

Like docker cp: when DEST is an existing directory the copy goes inside it
(DEST/NAME), otherwise it becomes DEST. An existing directory at the final
path is never merged or removed (the copy is refused). Nothing is written
outside the final path, whatever the stream holds.

Copying out of a VM (VM:PATH to a host path), the guest is not trusted:
NAME is the last component of the PATH you asked for, never a name the
guest sends (a stream naming anything else is refused); modes are masked by
your umask and setuid/setgid/sticky bits dropped; a symlink that points
outside the copy (absolute, or climbing out with ..) is refused unless
--outside-links, and the copied path itself must not be a symlink; the
copy may write at most copy.max_size (default 16GiB; sparse files count at
full size), or --max-bytes; and anything already at the final path is kept
unless --force (which replaces a file or symlink, never a directory). The
copy is built beside the final path and renamed into place at the end, so
a refused or failed copy changes nothing.

Copying into a VM, an existing file at the final path is replaced.`,
		Example: `  banger vm cp ./notes.md demo:/root/
  banger vm cp ./config demo:/root/.config/tool
  banger vm cp demo:/root/repo/build/out.log ./out.log
  banger vm cp --force demo:/root/repo/build/out.log ./out.log
  banger vm cp --max-bytes 64GiB demo:/root/dataset ./`,
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
			var opt workspace.ExtractOptions
			if srcGuest {
				var err error
				if opt, err = copyOutOptions(app, src, maxBytes, force, outsideLinks); err != nil {
					return err
				}
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
				fmt.Fprintf(app.Stderr, "copied %s to %s:%s (%s)\n", src, dstVM, termsafe.Line(res.Path), transferSummary(res, time.Since(start)))
				return nil
			}
			var res api.TransferResult
			_, err = pipeTar(c.Context(),
				func(w io.Writer) error { return cl.CopyOut(c.Context(), srcVM, src, w) },
				func(r io.Reader) (api.TransferResult, error) {
					placed, st, err := workspace.Place(c.Context(), r, dst, opt)
					res = api.TransferResult{Path: placed, Files: st.Files, Dirs: st.Dirs, Symlinks: st.Symlinks, Bytes: st.Bytes}
					return res, err
				})
			if err != nil {
				return copyOutError(err, opt)
			}
			fmt.Fprintf(app.Stderr, "copied %s:%s to %s (%s)\n", srcVM, src, res.Path, transferSummary(res, time.Since(start)))
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "copying out of a VM: replace a file or symlink already at the destination")
	c.Flags().StringVar(&maxBytes, "max-bytes", "", "copying out of a VM: the most the copy may write, e.g. 64GiB (default: copy.max_size)")
	c.Flags().BoolVar(&outsideLinks, "outside-links", false, "copying out of a VM: accept symlinks that point outside the copy (e.g. a venv's python -> /usr/bin/python3); they would point into this host")
	return c
}

// copyOutOptions are the rules for a stream from a guest, which is not
// trusted: the entry's name is the one asked for, modes honour the umask,
// size is capped, nothing is replaced without force, symlinks stay inside.
func copyOutOptions(app *App, src, maxBytes string, force, outsideLinks bool) (workspace.ExtractOptions, error) {
	name, err := workspace.CopyName(src)
	if err != nil {
		return workspace.ExtractOptions{}, usageError("%v", err)
	}
	opt := workspace.ExtractOptions{
		Name:            name,
		Umask:           workspace.ProcessUmask(),
		NoReplace:       !force,
		ConfineSymlinks: !outsideLinks,
	}
	if maxBytes != "" {
		n, err := config.ParseSize(maxBytes)
		if err != nil || n <= 0 {
			return opt, usageError("--max-bytes %q: want a size above zero, e.g. 64GiB", maxBytes)
		}
		opt.MaxBytes = n
		return opt, nil
	}
	cfg, err := app.Config()
	if err != nil {
		return opt, err
	}
	opt.MaxBytes = cfg.Copy.MaxBytes
	return opt, nil
}

// copyOutError adds the flag or key that lifts a refusal.
func copyOutError(err error, opt workspace.ExtractOptions) error {
	switch {
	case errors.Is(err, workspace.ErrWouldReplace):
		return fmt.Errorf("%w: pass --force to replace it, or copy to another path", err)
	case errors.Is(err, workspace.ErrOutsideLink):
		return fmt.Errorf("%w: if you want such links on this host, pass --outside-links", err)
	case errors.Is(err, workspace.ErrTooLarge):
		return fmt.Errorf("%w (%s here): if the copy is meant to be that large, raise copy.max_size in the config or pass --max-bytes", err, fmtBytes(opt.MaxBytes))
	}
	return err
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
	if e := <-perr; e != nil && !errors.Is(e, io.ErrClosedPipe) {
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
