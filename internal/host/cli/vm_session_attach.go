package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/termsafe"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// detachKey detaches a terminal attach (Ctrl-]), as telnet does.
const detachKey = 0x1d

func newSessionAttachCmd(app *App) *cobra.Command {
	var since, stdinEOF string
	c := &cobra.Command{
		Use:   "attach VM SESSION [--since resume|all|now|OFFSET] [--stdin-eof keep|close|detach]",
		Short: "Join your stdin, stdout and stderr to a session (the stdio bridge)",
		Long: `Attach joins this process's stdio to a running session: what you write goes
to the session's stdin, its stdout comes out on stdout and its stderr on
stderr. An orchestrator can spawn it as a subprocess and speak a line
protocol through it. Several attachers may be joined at once; they all see
the output and all write to the same stdin.

Replay: output is kept in the guest with byte offsets (the newest 1 MiB).
By default attach resumes where the last attach of this session by you
stopped (a cursor under banger's state dir), so output produced while
nobody was attached is replayed and nothing is printed twice; the first
attach replays everything still buffered. --since all replays everything
buffered, --since now only live output, --since N from byte offset N.
Output that is no longer buffered is reported on stderr as a gap.

Ending: when the session ends, attach prints how on stderr and exits with
the session's exit code (128+N for signal N). Ctrl-C, SIGTERM or SIGHUP
detach and exit 0, leaving the session running. If the daemon goes away
(even SIGKILLed), attach exits 1 saying so; run it again to resume.

stdin EOF (--stdin-eof): keep (the default) stops reading stdin and keeps
the session's stdin open for other or later attachers, while output keeps
flowing; close closes the session's stdin, so its process reads EOF (what a
pipe into a one-shot filter wants); detach detaches at once.

TTY sessions: with a terminal, it is put in raw mode, its size follows the
window, and Ctrl-] detaches (Ctrl-C goes to the session).`,
		Example: `  banger vm session attach demo echo
  printf '{"n":1}\n' | banger vm session attach demo echo --stdin-eof close
  banger vm session attach demo echo --since all
  banger vm session attach demo shell          # a TTY session: Ctrl-] detaches`,
		Args: exactArgs(2, "VM SESSION"),
		RunE: func(c *cobra.Command, args []string) error {
			switch stdinEOF {
			case "keep", "close", "detach":
			default:
				return usageError("--stdin-eof %q: want keep, close or detach", stdinEOF)
			}
			return attach(c.Context(), app, args[0], args[1], since, stdinEOF)
		},
	}
	c.Flags().StringVar(&since, "since", "resume", "where to start: resume, all, now, or a byte offset")
	c.Flags().StringVar(&stdinEOF, "stdin-eof", "keep", "what the end of stdin does: keep, close or detach")
	return c
}

// cursor remembers the offset an attacher has printed up to, so the next
// attach resumes there.
type cursor struct{ f *os.File }

// cursorPath is where the cursor of a VM's session lives; with id ""
// the VM's directory of cursors.
func cursorPath(app *App, vm, id string) (string, error) {
	paths, err := app.paths()
	if err != nil {
		return "", err
	}
	return filepath.Join(paths.StateDir, "attach", url.PathEscape(vm), url.PathEscape(id)), nil
}

// forgetCursors removes the cursors of a removed session or VM.
func forgetCursors(app *App, vm, id string) {
	if p, err := cursorPath(app, vm, id); err == nil {
		os.RemoveAll(p)
	}
}

func openCursor(app *App, vm, id string) (*cursor, int64, bool) {
	path, err := cursorPath(app, vm, id)
	if err != nil {
		return nil, 0, false
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, 0, false
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, false
	}
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	off, err := strconv.ParseInt(strings.TrimSpace(string(b[:n])), 10, 64)
	return &cursor{f}, off, err == nil
}

func (c *cursor) set(off int64) {
	if c != nil {
		c.f.WriteAt(fmt.Appendf(nil, "%020d\n", off), 0)
	}
}

func (c *cursor) close() {
	if c != nil {
		c.f.Close()
	}
}

func attach(ctx context.Context, app *App, vm, ref, since, stdinEOF string) error {
	var offset int64
	switch since {
	case "resume", "all", "now":
	default:
		n, err := strconv.ParseInt(since, 10, 64)
		if err != nil || n < 0 {
			return usageError("--since %q: want resume, all, now or a byte offset (0 or more)", since)
		}
		offset = n
	}
	cl, err := app.Client(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	// The session's id keys the cursor: a name can be reused after rm.
	target, err := cl.Session(ctx, vm, ref)
	if err != nil {
		return err
	}
	cur, saved, resumable := openCursor(app, vm, target.ID)
	defer cur.close()
	opt := client.AttachOptions{Since: -1}
	switch since {
	case "resume":
		if resumable && saved <= target.OutputBytes {
			opt.Since = saved
		}
	case "all":
	case "now":
		opt.Since = target.OutputBytes
	default:
		opt.Since = offset
	}
	a, ses, err := cl.Attach(ctx, vm, target.ID, opt)
	if err != nil {
		return err
	}
	defer a.Close()

	// Detach on a signal; in a raw terminal Ctrl-] does it instead.
	detached := make(chan struct{})
	var once sync.Once
	detach := func() {
		once.Do(func() {
			close(detached)
			a.Close()
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
			detach()
		case <-detached:
		}
	}()

	raw := false
	if ses.TTY {
		if f, ok := app.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			restore, resize, err := rawTerminal(app)
			if err != nil {
				return err
			}
			defer restore()
			raw = true
			if ws, ok := termSize(); ok {
				a.Resize(ws.Rows, ws.Cols)
			}
			go func() {
				for {
					select {
					case ws := <-resize:
						a.Resize(ws.Rows, ws.Cols)
					case <-detached:
						return
					}
				}
			}()
		}
	}

	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := app.Stdin.Read(buf)
			if n > 0 {
				p := buf[:n]
				if raw {
					if i := strings.IndexByte(string(p), detachKey); i >= 0 {
						a.Write(p[:i])
						detach()
						return
					}
				}
				if _, werr := a.Write(p); werr != nil {
					return
				}
			}
			if err != nil {
				switch stdinEOF {
				case "close":
					a.CloseStdin()
				case "detach":
					detach()
				}
				return
			}
		}
	}()

	offset = opt.Since
	if offset < 0 {
		offset = ses.BufferedFrom
	}
	for {
		ch, err := a.Next()
		if err != nil {
			select {
			case <-detached:
				fmt.Fprintf(app.Stderr, "\r\nbanger: detached from session %s at offset %d; it keeps running\r\n", ref, offset)
				return nil
			default:
			}
			if err == io.EOF {
				final, ferr := a.Final()
				if ferr != nil || final.ID == "" {
					final = ses
				}
				fmt.Fprintf(app.Stderr, "banger: session %s %s (%s)\n", ref, termsafe.Line(final.State), exitSummary(final))
				if code := exitCode(api.ExitStatus{Code: codeOf(final), Signal: final.Signal}); code != 0 {
					return &exitError{code: code}
				}
				return nil
			}
			return fmt.Errorf("lost the attach stream of session %s at offset %d: %w; the session keeps running in the guest: run `banger vm session attach %s %s` to resume", ref, offset, err, vm, ref)
		}
		if err := writeChunk(app, ch); err != nil {
			detach()
			return nil // our stdout is gone: nobody to print to
		}
		if ch.Stream == "gap" {
			offset = ch.Offset + ch.Dropped
		} else {
			offset = ch.Offset + int64(len(ch.Data))
		}
		cur.set(offset)
	}
}

func codeOf(s api.Session) int {
	if s.ExitCode != nil {
		return *s.ExitCode
	}
	if s.Signal == "" && s.State != api.SessionExited {
		return 1
	}
	return 0
}
