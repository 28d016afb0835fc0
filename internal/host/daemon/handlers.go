package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/store"
)

func (d *Daemon) getDaemon(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.DaemonStatus{
		Version:         d.build.Version,
		BuildID:         d.build.BuildID,
		PID:             os.Getpid(),
		UID:             os.Getuid(),
		Socket:          d.cfg.Paths.Socket(),
		StorePath:       d.store.Path(),
		LogFile:         d.logFile(),
		ManagedBy:       d.opts.ManagedBy,
		Executable:      d.exe,
		ExecutableStamp: d.exeStamp,
		StartedAt:       d.started.UTC(),
		Uptime:          api.Duration(time.Since(d.started)),
	})
}

// logFile is the daemon's log file, or "" when it logs to stderr (the
// journal).
func (d *Daemon) logFile() string {
	if d.opts.LogTo != nil {
		return ""
	}
	return d.cfg.Paths.LogFile()
}

// logPlace says where the log is read: the file, or the journal.
func (d *Daemon) logPlace() string {
	if f := d.logFile(); f != "" {
		return f
	}
	return "the journal (`banger daemon logs`)"
}

func (d *Daemon) postShutdown(w http.ResponseWriter, r *http.Request) error {
	var req api.ShutdownRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Reason == "" {
		req.Reason = "requested by client"
	}
	d.log.Info("shutdown requested", "reason", req.Reason)
	d.stopCause = req.Reason
	writeJSON(w, http.StatusAccepted, struct{}{})
	// Cancel after the answer is on its way; Shutdown waits for this
	// request to finish.
	go d.stop()
	return nil
}

func (d *Daemon) listOperations(w http.ResponseWriter, r *http.Request) error {
	ops, err := d.store.ListOperations(r.Context(), 100)
	if err != nil {
		return err
	}
	if ops == nil {
		ops = []api.Operation{}
	}
	return writeJSON(w, http.StatusOK, api.OperationList{Operations: ops})
}

// notFound converts the store's sentinel into the API's.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, format, args...)
	}
	return err
}

func (d *Daemon) getOperation(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	op, err := d.ops.Get(r.Context(), id)
	if err != nil {
		return notFound(err, "no operation %q: list operations with `banger operation list`", id)
	}
	return writeJSON(w, http.StatusOK, op)
}

func (d *Daemon) cancelOperation(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req api.CancelOperationRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := d.ops.Cancel(r.Context(), id, canceledBy(r, req.By)); err != nil {
		return notFound(err, "no operation %q: list operations with `banger operation list`", id)
	}
	return writeJSON(w, http.StatusAccepted, struct{}{})
}

// maxCancelBy bounds the front end's name in a cancel request.
const maxCancelBy = 64

// canceledBy is who a cancel request comes from, as the operation's error
// will say it: the front end's own name (by, or "the web UI" for a request
// from the web listener, "a client" when it gives none) and the caller's
// uid from the connection's peer credentials, which the front end cannot
// choose.
func canceledBy(r *http.Request, by string) string {
	p, _ := r.Context().Value(peerKey{}).(peer)
	by = strings.Join(strings.FieldsFunc(by, func(c rune) bool { return !unicode.IsPrint(c) || unicode.IsSpace(c) }), " ")
	if r := []rune(by); len(r) > maxCancelBy {
		by = string(r[:maxCancelBy])
	}
	switch {
	case p.web:
		by = "the web UI"
	case by == "":
		by = "a client"
	}
	return fmt.Sprintf("%s (uid %d)", by, p.cred.UID)
}

// streamOperation writes the operation's events as NDJSON, one flushed line
// each, until the operation is done or the client goes away.
func (d *Daemon) streamOperation(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := d.ops.Get(r.Context(), id); err != nil {
		return notFound(err, "no operation %q: list operations with `banger operation list`", id)
	}
	w.Header().Set("Content-Type", api.ContentTypeNDJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	err := d.ops.Subscribe(r.Context(), id, func(ev api.OperationEvent) error {
		if err := enc.Encode(ev); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		d.log.Debug("operation stream ended", "op", id, "error", err)
	}
	return nil // the status line is already written
}
