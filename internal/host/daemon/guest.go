package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/guest"
	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// wantsStream checks that the request asks to switch to the stream
// protocol, before anything is started in the guest.
func wantsStream(r *http.Request) error {
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.UpgradeStream) {
		return api.Errorf(api.CodeInvalidArgument, "%s %s streams: send it with \"Connection: Upgrade\" and \"Upgrade: %s\" (the banger client does)",
			r.Method, r.URL.Path, api.UpgradeStream)
	}
	return nil
}

// splice answers 101, then copies bytes between the client's connection
// and the agent stream until either side ends. The agent closes its side
// after an exec's exit frame or an attach's end frame; a client that goes
// away closes the stream, which kills an exec's command or detaches an
// attacher.
func (d *Daemon) splice(w http.ResponseWriter, st *agentmux.Stream, header http.Header) error {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		st.Close()
		return fmt.Errorf("switching protocols: %w", err)
	}
	defer conn.Close()
	defer st.Close()
	conn.SetDeadline(time.Time{}) // the server's timeouts were for the request
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + api.UpgradeStream + "\r\n")
	header.Write(&b)
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil
	}
	var once sync.Once
	done := make(chan struct{})
	end := func() { once.Do(func() { close(done) }) }
	go func() {
		io.Copy(st, readerFrom(brw.Reader, conn))
		end()
	}()
	go func() {
		io.Copy(conn, st)
		end()
	}()
	<-done
	return nil
}

// readerFrom reads what the server buffered, then the connection.
func readerFrom(br *bufio.Reader, conn net.Conn) io.Reader {
	if br.Buffered() == 0 {
		return conn
	}
	buffered, _ := br.Peek(br.Buffered())
	return io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn)
}

func (d *Daemon) execVM(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Query().Get("wait") == "true" {
		// The command's whole result in one JSON answer (api.ExecResult).
		var req api.ExecRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		res, err := d.guest.ExecWait(r.Context(), r.PathValue("name"), req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	}
	if err := wantsStream(r); err != nil {
		return err
	}
	var req api.ExecRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	st, err := d.guest.Exec(r.Context(), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	return d.splice(w, st, http.Header{})
}

func (d *Daemon) prepareWorkspace(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	req := api.PrepareWorkspaceRequest{Dir: q.Get("dir"), Mode: q.Get("mode"), HostPath: q.Get("host_path"), Head: q.Get("head"), Sent: q.Get("sent")}
	res, err := d.guest.PrepareWorkspace(r.Context(), r.PathValue("name"), req, r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (d *Daemon) copyIn(w http.ResponseWriter, r *http.Request) error {
	res, err := d.guest.CopyIn(r.Context(), r.PathValue("name"), r.URL.Query().Get("path"), r.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// lazyWriter sends the 200 header with the first byte, so an error that
// comes before any byte is still an ordinary error answer.
type lazyWriter struct {
	w           http.ResponseWriter
	contentType string // api.ContentTypeTar when ""
	started     bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		ct := l.contentType
		if ct == "" {
			ct = api.ContentTypeTar
		}
		l.w.Header().Set("Content-Type", ct)
		l.w.Header().Set("Trailer", api.TrailerError)
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

func (d *Daemon) copyOut(w http.ResponseWriter, r *http.Request) error {
	return streamOut(w, "", func(lw io.Writer) error {
		return d.guest.CopyOut(r.Context(), r.PathValue("name"), r.URL.Query().Get("path"), lw)
	})
}

// streamOut answers with what write writes, as contentType: an error
// before the first byte is an ordinary error answer, a later one the
// api.TrailerError trailer.
func streamOut(w http.ResponseWriter, contentType string, write func(io.Writer) error) error {
	lw := &lazyWriter{w: w, contentType: contentType}
	err := write(lw)
	if !lw.started {
		if err != nil {
			return err
		}
		lw.Write(nil)
		return nil
	}
	if err != nil {
		b, _ := json.Marshal(api.FromError(err))
		w.Header().Set(api.TrailerError, string(b))
	}
	return nil
}

func (d *Daemon) listSessions(w http.ResponseWriter, r *http.Request) error {
	list, err := d.guest.List(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.SessionList{Sessions: list})
}

func (d *Daemon) startSession(w http.ResponseWriter, r *http.Request) error {
	var req api.StartSessionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ses, err := d.guest.Start(r.Context(), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ses)
}

func (d *Daemon) getSession(w http.ResponseWriter, r *http.Request) error {
	ses, err := d.guest.Get(r.Context(), r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ses)
}

func (d *Daemon) removeSession(w http.ResponseWriter, r *http.Request) error {
	if err := d.guest.Remove(r.Context(), r.PathValue("name"), r.PathValue("id")); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

func (d *Daemon) signalSession(w http.ResponseWriter, r *http.Request) error {
	var req api.SignalSessionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Signal == "" {
		req.Signal = "TERM"
	}
	ses, err := d.guest.Signal(r.Context(), r.PathValue("name"), r.PathValue("id"), req.Signal)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ses)
}

// attachSession switches to the agent's attach frames: ?since=N replays
// from offset N (-1 or absent: everything buffered), ?follow=false stops at
// the output that exists now (logs).
func (d *Daemon) attachSession(w http.ResponseWriter, r *http.Request) error {
	if err := wantsStream(r); err != nil {
		return err
	}
	q := r.URL.Query()
	since := int64(-1)
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return api.FieldErrorf("since", "a byte offset: 0 or more, or -1 for everything buffered",
				"since %q is not an offset: give a byte offset (0 or more), or -1 for everything buffered", s)
		}
		since = n
	}
	follow := q.Get("follow") != "false"
	st, ses, err := d.guest.Attach(r.Context(), r.PathValue("name"), r.PathValue("id"), since, follow)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(ses)
	return d.splice(w, st, http.Header{api.HeaderSession: {string(b)}})
}

func (d *Daemon) workspaceDiff(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	switch q.Get("format") {
	case "", "summary":
		res, err := d.guest.WorkspaceDiff(r.Context(), r.PathValue("name"), q["path"])
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	case "patch":
		max, err := maxParam(q.Get("max"))
		if err != nil {
			return err
		}
		return streamOut(w, api.ContentTypePatch, func(lw io.Writer) error {
			return d.guest.WorkspacePatch(r.Context(), r.PathValue("name"), q["path"], max, lw)
		})
	}
	return api.FieldErrorf("format", "summary, patch", "format %q is not one of summary, patch", q.Get("format"))
}

func (d *Daemon) workspaceBundle(w http.ResponseWriter, r *http.Request) error {
	max, err := maxParam(r.URL.Query().Get("max"))
	if err != nil {
		return err
	}
	return streamOut(w, api.ContentTypeBundle, func(lw io.Writer) error {
		return d.guest.WorkspaceBundle(r.Context(), r.PathValue("name"), max, lw)
	})
}

func (d *Daemon) workspaceFiles(w http.ResponseWriter, r *http.Request) error {
	max, err := maxParam(r.URL.Query().Get("max"))
	if err != nil {
		return err
	}
	return streamOut(w, api.ContentTypeTar, func(lw io.Writer) error {
		return d.guest.WorkspaceFiles(r.Context(), r.PathValue("name"), max, lw)
	})
}

// maxParam reads a byte limit from a query parameter ("" is 0: the
// daemon's default).
func maxParam(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, api.FieldErrorf("max", guest.AllowedMax, "max %q is not a byte count above zero", s)
	}
	return n, nil
}
