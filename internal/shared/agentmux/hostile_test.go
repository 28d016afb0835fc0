package agentmux

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/hashicorp/yamux"
)

// What a guest may do to the host: the host reads a bounded number of
// bytes, gives up on a reply in time, and closes the channel when a limit
// is broken — never the daemon.

// countingConn counts the bytes the host reads from the channel.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// hostileTotal is how much a hostile guest writes at most before it
// stops: far more than any limit, so a host without one reads it all.
const hostileTotal = 64 << 20

// endless writes b repeated until hostileTotal bytes or a write fails.
func endless(w io.Writer, b []byte) {
	chunk := bytes.Repeat(b, (32<<10)/len(b))
	for n := 0; n < hostileTotal; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// authenticate runs the real agent's side of the handshake on guest (it
// holds testKey) and returns the line reader holding what follows the
// upgrade, or nil when the channel ended first.
func authenticate(guest net.Conn) *lineReader {
	g := &Guest{Key: testKey}
	lr := &lineReader{src: guest}
	var pending *pendingAuth
	for {
		line, err := lr.next()
		if err != nil {
			return nil
		}
		var m upgradeMsg
		if !decodeLine(line, &m) || m.ID == "" {
			continue
		}
		upgraded, err := g.lineMode(context.Background(), guest, m, &pending)
		if err != nil {
			return nil
		}
		if upgraded {
			return lr
		}
	}
}

// hostileAgent is a guest that authenticates like a real one (it holds
// the key) and then answers each request stream with onStream, given the
// header line it read.
func hostileAgent(t *testing.T, guest net.Conn, onStream func(st *yamux.Stream, header []byte)) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { guest.Close(); wg.Wait() })
	wg.Go(func() {
		lr := authenticate(guest)
		if lr == nil {
			return
		}
		mux, err := yamux.Server(struct {
			io.Reader
			io.WriteCloser
		}{lr, guest}, yamuxConfig())
		if err != nil {
			return
		}
		defer mux.Close()
		for {
			st, err := mux.AcceptStream()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer st.Close()
				header, err := bufio.NewReader(st).ReadBytes('\n')
				if err != nil {
					return
				}
				onStream(st, header)
			})
		}
	})
}

// hostileSession upgrades to a hostile agent through a counting channel.
func hostileSession(t *testing.T, cfg Config, onStream func(st *yamux.Stream, header []byte)) (*Session, *countingConn) {
	t.Helper()
	host, guest := net.Pipe()
	hostileAgent(t, guest, onStream)
	c := &countingConn{Conn: host}
	cfg.Peer = "VM hostile"
	s, err := cfg.Upgrade(testContext(t), c, testKey)
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

// sessionClosed reports whether s has ended.
func sessionClosed(s *Session) bool {
	select {
	case <-s.Done():
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// hostBound is what the host may read beyond a limit: one yamux stream
// window the guest may fill before the host reads, plus framing.
const hostBound = 256<<10 + 64<<10

func TestHostileReplies(t *testing.T) {
	tests := []struct {
		name string
		// reply is what the guest sends on the stream.
		reply func(w io.Writer)
		// request is what the host asks.
		request  func(ctx context.Context, s *Session) error
		wantMsg  string
		maxBytes int64
	}{
		{
			name:     "endless reply line",
			reply:    func(w io.Writer) { w.Write([]byte(`{"health":"`)); endless(w, []byte("a")) },
			request:  func(ctx context.Context, s *Session) error { _, err := s.Health(ctx); return err },
			wantMsg:  "VM hostile sent a reply line over 64 KiB: closing the agent channel",
			maxBytes: DefaultMaxLine + hostBound,
		},
		{
			name:  "huge call result",
			reply: func(w io.Writer) { w.Write([]byte(`{"result":[`)); endless(w, []byte(`"session",`)) },
			request: func(ctx context.Context, s *Session) error {
				var list []string
				return s.Call(ctx, "session.list", nil, &list)
			},
			wantMsg:  "VM hostile sent a reply line over 1 MiB: closing the agent channel",
			maxBytes: DefaultMaxCallReply + hostBound,
		},
		{
			name:  "exec reply without a newline",
			reply: func(w io.Writer) { endless(w, []byte("{}")) },
			request: func(ctx context.Context, s *Session) error {
				_, err := s.Exec(ctx, ExecRequest{Argv: []string{"true"}}, nil, nil, nil)
				return err
			},
			wantMsg:  "VM hostile sent a reply line over 64 KiB",
			maxBytes: DefaultMaxLine + hostBound,
		},
		{
			name: "frame larger than the frame limit",
			reply: func(w io.Writer) {
				w.Write([]byte("{}\n\x04\x7f\xff\xff\xff"))
				endless(w, []byte("x"))
			},
			request: func(ctx context.Context, s *Session) error {
				_, err := s.Exec(ctx, ExecRequest{Argv: []string{"true"}}, nil, io.Discard, nil)
				return err
			},
			wantMsg:  "VM hostile sent a frame over 1 MiB: closing the agent channel",
			maxBytes: hostBound + 64<<10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := hostileSession(t, Config{}, func(st *yamux.Stream, _ []byte) { tt.reply(st) })
			err := tt.request(testContext(t), s)
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("request = %v; want a limit error saying %q", err, tt.wantMsg)
			}
			if !sessionClosed(s) {
				t.Error("the session is still open after the guest broke a limit")
			}
			if !errors.Is(s.Err(), ErrLimit) {
				t.Errorf("Session.Err = %v, want the limit", s.Err())
			}
			if _, err := s.Health(testContext(t)); err == nil {
				t.Error("a request on the closed session succeeded")
			}
			if n := c.read.Load(); n > tt.maxBytes {
				t.Errorf("the host read %d bytes from the guest, more than %d", n, tt.maxBytes)
			}
		})
	}
}

// A reply that never comes: each call returns ErrTimeout after
// Config.ReplyTimeout, and the session stays usable.
func TestHostileNoReply(t *testing.T) {
	var answer atomic.Bool
	s, _ := hostileSession(t, Config{ReplyTimeout: 50 * time.Millisecond}, func(st *yamux.Stream, header []byte) {
		if answer.Load() {
			st.Write([]byte(`{"result":"late but fine"}` + "\n"))
			return
		}
		io.Copy(io.Discard, st) // until the host gives up
	})
	requests := map[string]func(ctx context.Context) error{
		"health": func(ctx context.Context) error { _, err := s.Health(ctx); return err },
		"call":   func(ctx context.Context) error { return s.Call(ctx, "session.list", nil, nil) },
		"exec": func(ctx context.Context) error {
			_, err := s.Exec(ctx, ExecRequest{Argv: []string{"true"}}, nil, nil, nil)
			return err
		},
		"put": func(ctx context.Context) error {
			return s.Put(ctx, Transfer{Path: "/x"}, strings.NewReader("data"), nil)
		},
		"get": func(ctx context.Context) error { return s.Get(ctx, Transfer{Path: "/x"}, io.Discard) },
		"attach": func(ctx context.Context) error {
			_, err := s.Attach(ctx, AttachRequest{Session: "x"}, nil)
			return err
		},
	}
	for name, call := range requests {
		t.Run(name, func(t *testing.T) {
			err := call(testContext(t))
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "VM hostile did not answer the") {
				t.Errorf("%s = %v; want ErrTimeout naming the VM", name, err)
			}
		})
	}
	answer.Store(true)
	var got string
	if err := s.Call(testContext(t), "session.list", nil, &got); err != nil || got != "late but fine" {
		t.Errorf("a call after the timeouts = %q, %v; want the session still usable", got, err)
	}
}

// A guest that floods line mode without ever ending a line: Upgrade
// reads at most Config.MaxUpgradeBytes and fails with a limit error.
func TestHostileUpgradeFlood(t *testing.T) {
	tests := []struct {
		name  string
		flood []byte
	}{
		{"no newline", []byte("x")},
		{"stale lines", []byte(`{"id":"stale","type":"upgrade","nonce":"00"}` + "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, guest := net.Pipe()
			defer host.Close()
			go func() { defer guest.Close(); endless(guest, tt.flood) }()
			go io.Copy(io.Discard, guest)
			c := &countingConn{Conn: host}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := Config{Peer: "VM hostile"}.Upgrade(ctx, c, testKey)
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "VM hostile sent more line-mode bytes than an upgrade needs over 4 MiB") {
				t.Errorf("Upgrade = %v; want the upgrade's byte limit", err)
			}
			if n := c.read.Load(); n > DefaultMaxUpgradeBytes {
				t.Errorf("the host read %d bytes in line mode, more than %d", n, DefaultMaxUpgradeBytes)
			}
		})
	}
}

// lineGuest plays a guest in line mode: answer gets each line the host
// writes and returns the lines to send back.
func lineGuest(t *testing.T, answer func(m upgradeMsg) []upgradeMsg) net.Conn {
	t.Helper()
	host, guest := net.Pipe()
	t.Cleanup(func() { host.Close(); guest.Close() })
	go func() {
		lr := &lineReader{src: guest}
		for {
			line, err := lr.next()
			if err != nil {
				return
			}
			var m upgradeMsg
			if !decodeLine(line, &m) {
				continue
			}
			for _, r := range answer(m) {
				if writeLine(guest, r) != nil {
					return
				}
			}
		}
	}()
	return host
}

// Guests that do not complete the handshake as the VM's agent would.
func TestUpgradeRefusesImpostors(t *testing.T) {
	challenge := strings.Repeat("ab", randomSize)
	tests := []struct {
		name   string
		answer func(m upgradeMsg) []upgradeMsg
		want   error
	}{
		{
			// A protocol 2 agent from before authentication.
			name: "accepts without a challenge",
			answer: func(m upgradeMsg) []upgradeMsg {
				return []upgradeMsg{{ID: m.ID, Type: TypeUpgrade, Protocol: Protocol, Nonce: m.Nonce}}
			},
			want: ErrAgentTooOld,
		},
		{
			// A guest without the key (a stale guest on a reused CID)
			// that says yes to anything.
			name: "cannot prove the key",
			answer: func(m upgradeMsg) []upgradeMsg {
				switch m.Type {
				case TypeUpgrade:
					return []upgradeMsg{{ID: m.ID, Type: typeChallenge, Protocol: Protocol, Nonce: m.Nonce, Challenge: challenge}}
				case typeAuth:
					return []upgradeMsg{{ID: m.ID, Type: typeUpgradeOK, Protocol: Protocol, Proof: m.MAC}} // echoes the host's proof
				}
				return nil
			},
			want: ErrGuestUnproven,
		},
		{
			name: "no key",
			answer: func(m upgradeMsg) []upgradeMsg {
				return []upgradeMsg{{ID: m.ID, Type: m.Type, Error: &agentproto.Error{Code: CodeNoKey, Message: "no key"}}}
			},
			want: ErrAgentNoKey,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Upgrade(testContext(t), lineGuest(t, tt.answer), testKey)
			if !errors.Is(err, tt.want) {
				t.Errorf("Upgrade = %v, want %v", err, tt.want)
			}
		})
	}
}

// rawExchange writes lines to a guest and returns the replies with their
// ID, skipping the rest, until want of them came.
func rawExchange(t *testing.T, rw io.ReadWriter, lr *lineReader, id string, want int, lines ...upgradeMsg) []upgradeMsg {
	t.Helper()
	for _, l := range lines {
		if err := writeLine(rw, l); err != nil {
			t.Fatal(err)
		}
	}
	var got []upgradeMsg
	for len(got) < want {
		line, err := lr.next()
		if err != nil {
			t.Fatalf("reading the guest's replies: %v", err)
		}
		var m upgradeMsg
		if decodeLine(line, &m) && m.ID == id {
			got = append(got, m)
		}
	}
	return got
}

// The guest refuses a host with the wrong key, and an exchange recorded
// from the right host cannot be replayed: every challenge is fresh and
// answered once.
func TestGuestRefusesWrongAndReplayedProofs(t *testing.T) {
	host, guest := socketPair(t)
	served := &fakeHandler{}
	serveGuest(t, &Guest{Handler: served, Key: testKey, AuthFailDelay: time.Millisecond}, host, guest)

	// Wrong key.
	if _, err := Upgrade(testContext(t), &hostLink{f: host}, []byte("not the key, but 32 bytes long!!")); !errors.Is(err, ErrKeyRefused) {
		t.Fatalf("Upgrade with the wrong key = %v, want ErrKeyRefused", err)
	}

	// Record a successful exchange between the right host and the guest.
	lr := &lineReader{src: host}
	nonce := bytes.Repeat([]byte{1}, randomSize)
	up := upgradeMsg{ID: "recorded", Type: TypeUpgrade, Protocol: Protocol, Nonce: hexString(nonce)}
	ch := rawExchange(t, host, lr, up.ID, 1, up)[0]
	if ch.Type != typeChallenge {
		t.Fatalf("the guest answered %+v, want a challenge", ch)
	}
	c, _ := decodeRandom(ch.Challenge)
	auth := upgradeMsg{ID: up.ID, Type: typeAuth, MAC: hexString(proof(testKey, hostLabel, nonce, c))}

	// An attacker replays it: the same upgrade line gets a new challenge,
	// and the recorded proof does not answer it.
	ch2 := rawExchange(t, host, lr, up.ID, 1, up)[0]
	if ch2.Challenge == ch.Challenge {
		t.Fatal("the guest issued the same challenge twice")
	}
	if rep := rawExchange(t, host, lr, up.ID, 1, auth)[0]; rep.Error == nil || rep.Error.Code != CodeUnauthenticated {
		t.Fatalf("the replayed proof got %+v, want refused as %s", rep, CodeUnauthenticated)
	}
	// A proof with no challenge outstanding (the replay consumed it), or
	// a host proof offered as the guest's, is refused too.
	for _, m := range []upgradeMsg{auth, {ID: up.ID, Type: typeAuth, MAC: hexString(proof(testKey, guestLabel, nonce, c))}} {
		if rep := rawExchange(t, host, lr, up.ID, 1, m)[0]; rep.Error == nil || rep.Error.Code != CodeUnauthenticated {
			t.Errorf("proof %+v got %+v, want refused", m, rep)
		}
	}
	// A stream header written in line mode is no request.
	host.Write([]byte("\n" + `{"id":"x","type":"put","path":"/pwned"}` + "\n"))
	if rep := rawExchange(t, host, lr, "x", 1)[0]; rep.Error == nil || rep.Error.Code != CodeUnauthenticated {
		t.Errorf("a put in line mode got %+v, want refused", rep)
	}
	served.mu.Lock()
	defer served.mu.Unlock()
	if len(served.puts) != 0 {
		t.Errorf("the guest served %+v to an unauthenticated host", served.puts)
	}
}

// A guest with no key refuses every request and says why.
func TestKeylessGuestRefusesEverything(t *testing.T) {
	host, guest := socketPair(t)
	serveGuest(t, &Guest{Handler: &fakeHandler{}}, host, guest)
	_, err := Upgrade(testContext(t), &hostLink{f: host}, testKey)
	if !errors.Is(err, ErrAgentNoKey) || !strings.Contains(err.Error(), "boot payload is missing") {
		t.Errorf("Upgrade = %v, want ErrAgentNoKey", err)
	}
	lr := &lineReader{src: host}
	for _, typ := range []string{"health", typeAuth, "exec"} {
		rep := rawExchange(t, host, lr, "q", 1, upgradeMsg{ID: "q", Type: typ})[0]
		if rep.Error == nil || rep.Error.Code != CodeNoKey {
			t.Errorf("%s: %+v, want refused as %s", typ, rep, CodeNoKey)
		}
	}
}

func hexString(b []byte) string { return hex.EncodeToString(b) }

// hostKeysGuest answers host_keys with keys.
type hostKeysGuest struct {
	fakeHandler
	keys []string
}

func (g *hostKeysGuest) Call(context.Context, string, json.RawMessage) (any, error) {
	return g.keys, nil
}

func TestHostKeysBounded(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG root@guest"
	tests := []struct {
		name string
		keys []string
		want string // "": accepted
	}{
		{"a few", []string{key, key}, ""},
		{"too many", slices.Repeat([]string{key}, MaxHostKeys+1), "VM hostile sent more than 16 host keys: closing the agent channel"},
		{"too long", []string{key, strings.Repeat("A", MaxHostKeyBytes+1)}, "VM hostile sent a host key over 16 KiB: closing the agent channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, guest := net.Pipe()
			serveGuest(t, &Guest{Handler: &hostKeysGuest{keys: tt.keys}, Key: testKey}, host, guest)
			s, err := Config{Peer: "VM hostile"}.Upgrade(testContext(t), host, testKey)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.HostKeys(testContext(t))
			if tt.want == "" {
				if err != nil || len(got) != len(tt.keys) {
					t.Errorf("HostKeys = %d keys, %v; want %d", len(got), err, len(tt.keys))
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("HostKeys = %v; want %q", err, tt.want)
			}
			if !sessionClosed(s) {
				t.Error("the session is still open")
			}
		})
	}
}

// silentAfterUpgrade authenticates like the real agent, then reads and
// ignores everything, acknowledging no stream.
func silentAfterUpgrade(t *testing.T, guest net.Conn) {
	t.Helper()
	go func() {
		if lr := authenticate(guest); lr != nil {
			io.Copy(io.Discard, lr)
		}
	}()
}

// A guest that never acknowledges the host's streams: more requests than
// yamux's backlog of unacknowledged streams all return, and the session
// is closed once a stream stays unacknowledged for the reply timeout.
func TestHostileUnacknowledgedStreams(t *testing.T) {
	host, guest := net.Pipe()
	defer guest.Close()
	silentAfterUpgrade(t, guest)
	s, err := Config{Peer: "VM hostile", ReplyTimeout: 50 * time.Millisecond}.Upgrade(testContext(t), host, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 300 { // yamux.DefaultConfig().AcceptBacklog is 256
		if _, err := s.Health(testContext(t)); err == nil {
			t.Fatal("health from a silent guest")
		}
	}
	if !sessionClosed(s) {
		t.Error("the session outlived streams its guest never acknowledged")
	}
}

// A guest that opens a stream of its own has its session closed.
func TestHostileGuestOpensStreams(t *testing.T) {
	host, guest := net.Pipe()
	defer guest.Close()
	go func() {
		lr := authenticate(guest)
		if lr == nil {
			return
		}
		mux, err := yamux.Server(struct {
			io.Reader
			io.WriteCloser
		}{lr, guest}, yamuxConfig())
		if err != nil {
			return
		}
		if st, err := mux.OpenStream(); err == nil {
			st.Write(bytes.Repeat([]byte("x"), 64<<10))
		}
	}()
	s2, err := Config{Peer: "VM hostile"}.Upgrade(testContext(t), host, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !sessionClosed(s2) {
		t.Fatal("the session outlived a stream the guest opened")
	}
	if err := s2.Err(); err == nil || !strings.Contains(err.Error(), "VM hostile opened a stream, which an agent never does: closing the agent channel") {
		t.Errorf("Session.Err = %v", err)
	}
}

// A put whose data the guest takes but whose final reply never comes
// returns ErrTimeout once the reply timeout has passed after its end.
func TestHostilePutNeverAnswered(t *testing.T) {
	s, _ := hostileSession(t, Config{ReplyTimeout: 50 * time.Millisecond}, func(st *yamux.Stream, _ []byte) {
		st.Write([]byte("{}\n")) // go ahead
		r := bufio.NewReader(st)
		for {
			ch, _, err := readFrame(r)
			if err != nil || ch == chEnd {
				break
			}
		}
		io.Copy(io.Discard, r) // and never answer
	})
	err := s.Put(testContext(t), Transfer{Path: "/root/x"}, strings.NewReader(strings.Repeat("data", 100_000)), nil)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "VM hostile did not answer the put of /root/x") {
		t.Errorf("Put = %v, want ErrTimeout", err)
	}
}
