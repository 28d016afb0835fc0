package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/bangerdev/banger/internal/host/vm"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// toAPI is the API's view of a guest session.
func toAPI(vmName string, in agentproto.SessionInfo) api.Session {
	return api.Session{
		ID: in.ID, Name: in.Name, VM: vmName, Argv: in.Argv, Cwd: in.Cwd, EnvKeys: in.EnvKeys,
		TTY: in.Mode == agentproto.SessionTTY, PID: in.PID, State: in.State,
		StartedAt: in.StartedAt, ExitedAt: in.ExitedAt, ExitCode: in.ExitCode, Signal: in.Signal,
		Diagnostics: in.Diagnostics, AttachCount: in.AttachCount,
		OutputBytes: in.OutputBytes, BufferedFrom: in.BufferedFrom, Orphaned: in.Orphaned,
	}
}

// save records the session in the store.
func (s *Service) save(ctx context.Context, vmID string, ses api.Session) error {
	return s.saveIfChanged(ctx, vmID, ses, "")
}

// saveIfChanged records the session unless prev, its stored metadata, is
// what it would write: listing and polling do not rewrite unchanged rows.
func (s *Service) saveIfChanged(ctx context.Context, vmID string, ses api.Session, prev string) error {
	meta, err := json.Marshal(ses)
	if err != nil {
		return err
	}
	if string(meta) == prev {
		return nil
	}
	if err := s.Store.PutSession(ctx, store.Session{ID: ses.ID, VMID: vmID, Name: ses.Name, State: ses.State, Meta: string(meta)}); err != nil {
		return err
	}
	s.changed(ses)
	return nil
}

// stored returns what the store remembers of a VM's sessions, and their
// metadata as stored, by id.
func (s *Service) stored(ctx context.Context, v vm.VM) ([]api.Session, map[string]string, error) {
	recs, err := s.Store.ListSessions(ctx, v.ID)
	if err != nil {
		return nil, nil, err
	}
	out := make([]api.Session, 0, len(recs))
	raw := make(map[string]string, len(recs))
	for _, r := range recs {
		var ses api.Session
		if err := json.Unmarshal([]byte(r.Meta), &ses); err != nil || ses.ID == "" {
			ses = api.Session{ID: r.ID, Name: r.Name, State: r.State}
		}
		ses.VM = v.Name
		raw[r.ID] = r.Meta
		out = append(out, ses)
	}
	return out, raw, nil
}

// markLost records that the guest no longer knows a session that was
// running.
func (s *Service) markLost(ctx context.Context, v vm.VM, ses *api.Session, why string) {
	if ses.State != api.SessionRunning {
		return
	}
	ses.State = api.SessionLost
	ses.AttachCount = 0
	ses.Diagnostics = append(ses.Diagnostics, why)
	s.save(ctx, v.ID, *ses)
}

// lostReason says why a VM's running sessions are gone.
func lostReason(v vm.VM) string {
	if v.State != api.VMRunning {
		return fmt.Sprintf("the VM %s was %s while the session ran", v.Name, v.State)
	}
	return "the guest no longer knows this session (the VM restarted while it ran)"
}

// Start starts a session; the agent has waited out the early-exit window,
// so a command that died at once comes back failed with diagnostics.
func (s *Service) Start(ctx context.Context, vmName string, req api.StartSessionRequest) (api.Session, error) {
	if len(req.Argv) == 0 {
		return api.Session{}, api.FieldErrorf("argv", AllowedArgv, "argv is empty: a session needs a command to run")
	}
	for _, kv := range req.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return api.Session{}, api.FieldErrorf("env", AllowedEnv, "env entry %q is not KEY=VALUE: give each variable as KEY=VALUE", kv)
		}
	}
	v, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return api.Session{}, err
	}
	var info agentproto.SessionInfo
	p := agentproto.SessionStart{Name: req.Name, Argv: req.Argv, Cwd: req.Cwd, Env: req.Env, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols}
	if err := sess.Call(ctx, agentproto.MethodSessionStart, p, &info); err != nil {
		return api.Session{}, apiError(err)
	}
	if info, err = checkInfo(v.Name, info); err != nil {
		return api.Session{}, closeChannel(sess, err)
	}
	out := toAPI(v.Name, info)
	return out, s.save(ctx, v.ID, out)
}

// List returns a VM's sessions. For a running VM the guest's list is the
// truth and the store is rewritten from it; for a stopped one the store's
// copy is all there is.
func (s *Service) List(ctx context.Context, vmName string) ([]api.Session, error) {
	v, err := s.VMs.Get(ctx, vmName)
	if err != nil {
		return nil, err
	}
	known, raw, err := s.stored(ctx, v)
	if err != nil {
		return nil, err
	}
	if v.State == api.VMPaused {
		// Its sessions are in its saved memory: they run on at resume.
		return known, nil
	}
	if v.State != api.VMRunning {
		for i := range known {
			s.markLost(ctx, v, &known[i], lostReason(v))
		}
		return known, nil
	}
	v, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return nil, err
	}
	var infos []agentproto.SessionInfo
	if err := sess.Call(ctx, agentproto.MethodSessionList, nil, &infos); err != nil {
		return nil, apiError(err)
	}
	if infos, err = checkInfos(v.Name, infos); err != nil {
		return nil, closeChannel(sess, err)
	}
	live := map[string]bool{}
	forked := map[string]string{}
	for _, ses := range known {
		forked[ses.ID] = ses.ForkedFrom
	}
	out := make([]api.Session, 0, len(infos)+len(known))
	for _, in := range infos {
		ses := toAPI(v.Name, in)
		ses.ForkedFrom = forked[ses.ID]
		live[ses.ID] = true
		if err := s.saveIfChanged(ctx, v.ID, ses, raw[ses.ID]); err != nil {
			return nil, err
		}
		out = append(out, ses)
	}
	for _, ses := range known {
		if !live[ses.ID] {
			s.markLost(ctx, v, &ses, lostReason(v))
			out = append(out, ses)
		}
	}
	return out, nil
}

// find picks a session by id or name from a list.
func find(list []api.Session, vmName, ref string) (api.Session, error) {
	for _, ses := range list {
		if ses.ID == ref || (ses.Name != "" && ses.Name == ref) {
			return ses, nil
		}
	}
	return api.Session{}, api.Errorf(api.CodeNotFound, "VM %s has no session %q: list them with `banger vm session list %s`", vmName, ref, vmName)
}

// Get returns one session by id or name.
func (s *Service) Get(ctx context.Context, vmName, ref string) (api.Session, error) {
	list, err := s.List(ctx, vmName)
	if err != nil {
		return api.Session{}, err
	}
	return find(list, vmName, ref)
}

// Signal sends a signal ("TERM", "KILL", ...) to a running session's
// process group and returns the session as it is right after.
func (s *Service) Signal(ctx context.Context, vmName, ref, signal string) (api.Session, error) {
	ses, err := s.Get(ctx, vmName, ref)
	if err != nil {
		return ses, err
	}
	if ses.State != api.SessionRunning {
		return ses, api.Errorf(api.CodeFailedPrecondition, "session %s is %s: nothing to signal", ref, ses.State)
	}
	v, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return ses, err
	}
	var info agentproto.SessionInfo
	if err := sess.Call(ctx, agentproto.MethodSessionSignal, agentproto.SessionSignal{Session: ses.ID, Signal: signal}, &info); err != nil {
		return ses, apiError(err)
	}
	if info, err = checkInfo(v.Name, info); err != nil {
		return ses, closeChannel(sess, err)
	}
	out := toAPI(v.Name, info)
	return out, s.save(ctx, v.ID, out)
}

// Remove forgets a session that is no longer running, in the guest (its
// state and output) and in the store.
func (s *Service) Remove(ctx context.Context, vmName, ref string) error {
	ses, err := s.Get(ctx, vmName, ref)
	if err != nil {
		return err
	}
	if ses.State == api.SessionRunning {
		return api.Errorf(api.CodeFailedPrecondition, "session %s is still running: stop it first with `banger vm session stop %s %s`", ref, vmName, ref)
	}
	v, err := s.VMs.Get(ctx, vmName)
	if err != nil {
		return err
	}
	if ses.State != api.SessionLost && v.State == api.VMRunning {
		_, sess, err := s.VMs.Agent(ctx, vmName)
		if err != nil {
			return err
		}
		if err := sess.Call(ctx, agentproto.MethodSessionRemove, agentproto.SessionRef{Session: ses.ID}, nil); err != nil {
			if e := apiError(err); !errors.Is(e, api.ErrNotFound) {
				return e
			}
		}
	}
	if err := s.Store.DeleteSession(ctx, v.ID, ses.ID); err != nil {
		return err
	}
	s.removed(v.Name, ses)
	return nil
}

// Attach opens an attach stream to a session for the caller to splice to
// its client: output from offset since (since < 0: everything still
// buffered), then live output while follow is set; see agentmux's attach
// frames.
func (s *Service) Attach(ctx context.Context, vmName, ref string, since int64, follow bool) (*agentmux.Stream, api.Session, error) {
	ses, err := s.Get(ctx, vmName, ref)
	if err != nil {
		return nil, ses, err
	}
	if ses.State == api.SessionLost {
		return nil, ses, api.Errorf(api.CodeFailedPrecondition, "session %s is lost (%s): its output is gone", ref, strings.Join(ses.Diagnostics, "; "))
	}
	v, sess, err := s.VMs.Agent(ctx, vmName)
	if err != nil {
		return nil, ses, err
	}
	st, rep, err := sess.Open(ctx, agentmux.Header{Type: agentmux.TypeAttach, Attach: &agentmux.AttachRequest{Session: ses.ID, Since: since, Follow: follow}})
	if err != nil {
		return nil, ses, s.ended(ctx, vmName, "the attach of "+ref, apiError(err))
	}
	var info agentproto.SessionInfo
	if json.Unmarshal(rep.Result, &info) == nil && info.ID != "" {
		if info, err = checkInfo(v.Name, info); err != nil {
			st.Close()
			return nil, ses, closeChannel(sess, err)
		}
		ses = toAPI(v.Name, info)
		s.save(ctx, v.ID, ses)
	}
	return st, ses, nil
}
