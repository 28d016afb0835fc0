package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/guest/guestsession"
	"github.com/bangerdev/banger/internal/shared/agentmux"
	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// hostileAgent answers session calls with what a compromised guest
// chooses.
type hostileAgent struct {
	list  any // the session.list result
	start any // the session.start result
}

func (hostileAgent) Health(context.Context) (agentproto.Health, error) {
	return agentproto.Health{}, nil
}
func (hostileAgent) Put(context.Context, agentmux.Transfer, io.Reader) (any, error) { return nil, nil }
func (hostileAgent) Get(context.Context, agentmux.Transfer, io.Writer) error        { return nil }

func (h hostileAgent) Call(_ context.Context, method string, _ json.RawMessage) (any, error) {
	switch method {
	case agentproto.MethodSessionList:
		return h.list, nil
	case agentproto.MethodSessionStart:
		return h.start, nil
	}
	return nil, &agentmux.Error{Code: agentmux.CodeUnknownType, Message: method}
}

func info(id string) guestsession.Info {
	return guestsession.Info{ID: id, Argv: []string{"sh"}, Mode: guestsession.ModePipe, State: guestsession.StateRunning, StartedAt: time.Unix(1, 0)}
}

// TestHostileSessionReports: a guest's session list or session that breaks
// a bound reaches neither the store nor the client, and ends the VM's
// agent channel.
func TestHostileSessionReports(t *testing.T) {
	many := make([]guestsession.Info, MaxSessions+1)
	for i := range many {
		many[i] = info(fmt.Sprintf("s%d", i))
	}
	escape := info("esc")
	escape.Name = "evil\x1b]0;pwned\x07"
	tests := []struct {
		name  string
		agent hostileAgent
		call  func(s *Service) error
		want  string
	}{
		{"too many sessions", hostileAgent{list: many},
			func(s *Service) error { _, err := s.List(context.Background(), "g"); return err },
			fmt.Sprintf("the agent of VM g reported %d sessions, more than %d: closing the agent channel", MaxSessions+1, MaxSessions)},
		{"an id that is a path", hostileAgent{list: []guestsession.Info{info("../../etc/passwd")}},
			func(s *Service) error { _, err := s.List(context.Background(), "g"); return err },
			"reported a session id of 16 bytes that is not"},
		{"an id twice", hostileAgent{list: []guestsession.Info{info("a"), info("a")}},
			func(s *Service) error { _, err := s.List(context.Background(), "g"); return err },
			`reported session id "a" twice`},
		{"a name with escape sequences", hostileAgent{start: escape},
			func(s *Service) error {
				_, err := s.Start(context.Background(), "g", api.StartSessionRequest{Argv: []string{"sh"}})
				return err
			},
			"reported a session name of 14 bytes that is not up to 128 bytes of printable UTF-8"},
		{"a state banger does not know", hostileAgent{start: func() guestsession.Info { i := info("x"); i.State = "pwned"; return i }()},
			func(s *Service) error {
				_, err := s.Start(context.Background(), "g", api.StartSessionRequest{Argv: []string{"sh"}})
				return err
			},
			`reported session state "pwned"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f, st := setup(t)
			f.guest = &agentmux.Guest{Handler: tt.agent, Key: testKey}
			f.connect(t)
			err := tt.call(s)
			if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v; want unavailable, saying %q", err, tt.want)
			}
			select {
			case <-f.sess.Done():
			case <-time.After(10 * time.Second):
				t.Error("the agent channel is still open")
			}
			if recs, _ := st.ListSessions(context.Background(), "vm1"); len(recs) != 0 {
				t.Errorf("the store holds %d sessions from the hostile report", len(recs))
			}
		})
	}
}

// Long free text from the guest is cut before it is stored.
func TestSessionTextIsBounded(t *testing.T) {
	s, f, st := setup(t)
	long := info("long")
	long.Argv = make([]string, 10_000)
	for i := range long.Argv {
		long.Argv[i] = "arg"
	}
	long.Argv[0] = strings.Repeat("é", 100_000) // 200 KB
	long.Cwd = strings.Repeat("/d", 50_000)
	long.Diagnostics = []string{strings.Repeat("x", 50_000), "\xff\xfe not UTF-8"}
	f.guest = &agentmux.Guest{Handler: hostileAgent{list: []guestsession.Info{long}}, Key: testKey}
	f.connect(t)
	list, err := s.List(context.Background(), "g")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	got := list[0]
	if len(got.Argv) != maxArgs || len(got.Argv[0]) > maxArgLen || !strings.HasSuffix(got.Argv[0], "…") || got.Argv[maxArgs-1] != fmt.Sprintf("… (%d more)", 10_000-maxArgs+1) {
		t.Errorf("argv: %d entries, first %d bytes, last %q", len(got.Argv), len(got.Argv[0]), got.Argv[len(got.Argv)-1])
	}
	if len(got.Cwd) > maxCwdLen || len(got.Diagnostics[0]) > maxDiagnosticLen || got.Diagnostics[1] != "\uFFFD\uFFFD not UTF-8" {
		t.Errorf("cwd %d bytes, diagnostics %q", len(got.Cwd), got.Diagnostics)
	}
	recs, _ := st.ListSessions(context.Background(), "vm1")
	if len(recs) != 1 || len(recs[0].Meta) > 2*maxArgs*maxArgLen {
		t.Errorf("stored: %d rows, metadata of %d bytes", len(recs), len(recs[0].Meta))
	}
}
