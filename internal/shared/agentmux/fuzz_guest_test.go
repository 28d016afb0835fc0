package agentmux

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// The guest end under fuzzing: FuzzGuestLineMode feeds Guest.Serve what
// anyone on the agent channel could send before authenticating;
// FuzzGuestStream sends one stream of arbitrary bytes inside an
// authenticated session. Seeds are f.Add calls; plain `go test` runs them.

// fuzzChannel is an agent channel whose host side sends in and records
// what the guest writes.
type fuzzChannel struct {
	in  io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *fuzzChannel) Read(p []byte) (int, error) { return c.in.Read(p) }

func (c *fuzzChannel) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *fuzzChannel) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// countingHandler counts the requests it was asked to serve.
type countingHandler struct {
	fakeHandler
	mu    sync.Mutex
	calls int
}

func (h *countingHandler) count() {
	h.mu.Lock()
	h.calls++
	h.mu.Unlock()
}

func (h *countingHandler) Health(ctx context.Context) (agentproto.Health, error) {
	h.count()
	return h.fakeHandler.Health(ctx)
}

func (h *countingHandler) Put(ctx context.Context, req Transfer, r io.Reader) (any, error) {
	h.count()
	return h.fakeHandler.Put(ctx, req, r)
}

func (h *countingHandler) Get(ctx context.Context, req Transfer, w io.Writer) error {
	h.count()
	return h.fakeHandler.Get(ctx, req, w)
}

// FuzzGuestLineMode: whatever arrives before a host proved the key, the
// guest serves nothing (its Handler is never called), never writes
// upgrade-ok, answers only with the reset line, a challenge or a refusal
// carrying a handshake code (no_key for a keyless guest), and Serve
// returns io.EOF when the bytes end.
func FuzzGuestLineMode(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","type":"upgrade","protocol":2,"nonce":"` + strings.Repeat("11", randomSize) + `"}` + "\n",
		`{"id":"1","type":"upgrade","protocol":2,"nonce":"` + strings.Repeat("11", randomSize) + `"}` + "\n" +
			`{"id":"1","type":"auth","mac":"` + strings.Repeat("00", 32) + `"}` + "\n",
		`{"id":"2","type":"auth","mac":"zz"}` + "\n",
		`{"id":"3","type":"exec","exec":{"argv":["true"]}}` + "\n",
		`{"id":"4","type":"health"}` + "\n" + `garbage{"id":"5","type":"upgrade","nonce":"x"}` + "\n",
		`{"id":"` + strings.Repeat("a", 100) + `","type":"upgrade"}` + "\n",
		"\x00\x00\x00\x0c\x00\x00\x00\x01\x00\x00\x00\x00 yamux bytes",
		"",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, keyless bool) {
		h := &countingHandler{}
		g := &Guest{Handler: h, Key: testKey, AuthFailDelay: time.Nanosecond}
		if keyless {
			g.Key = nil
		}
		ch := &fuzzChannel{in: bytes.NewReader(data)}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Serve(ctx, ch); !errors.Is(err, io.EOF) {
			t.Fatalf("Serve = %v; want io.EOF at the end of the bytes", err)
		}
		if h.calls != 0 {
			t.Fatalf("the handler served %d requests before any authentication", h.calls)
		}
		for _, line := range bytes.Split(ch.written(), []byte("\n")) {
			if len(line) == 0 || string(line) == resetLine {
				continue
			}
			var m upgradeMsg
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("the guest wrote a line that is not a message: %q", line)
			}
			switch {
			case m.Type == typeUpgradeOK || m.Proof != "":
				t.Fatalf("the guest accepted an unproven host: %q", line)
			case m.Type == typeChallenge && m.Error == nil:
				if keyless {
					t.Fatalf("a keyless guest sent a challenge: %q", line)
				}
			case m.Error == nil:
				t.Fatalf("the guest answered without a refusal: %q", line)
			case keyless && m.Error.Code != CodeNoKey:
				t.Fatalf("a keyless guest refused with %q, not %q", m.Error.Code, CodeNoKey)
			case m.Error.Code != CodeNoKey && m.Error.Code != CodeUnauthenticated && m.Error.Code != CodeBadRequest:
				t.Fatalf("refusal with code %q: %q", m.Error.Code, line)
			}
			if len(m.ID) > maxIDLen {
				t.Fatalf("the guest echoed an ID of %d bytes", len(m.ID))
			}
		}
	})
}

// FuzzGuestStream: one stream of arbitrary bytes from an authenticated
// host gets a well-formed reply line (when it holds a header line), a
// refusal code the host knows, reaches the Handler only for the type its
// header names, and never breaks the session: a health request on the
// same session answers afterwards. Exec headers are left out: an
// authenticated host may run any command, and the fuzzer would run them
// on this machine.
func FuzzGuestStream(f *testing.F) {
	for _, s := range []string{
		`{"type":"health"}` + "\n",
		`{"type":"put","path":"/root/f","op":"file"}` + "\n" + "\x01\x00\x00\x00\x03abc\x02\x00\x00\x00\x00",
		`{"type":"get","path":"/nope"}` + "\n",
		`{"type":"call","method":"session.list"}` + "\n",
		`{"type":"attach","attach":{"session":"s1"}}` + "\n",
		`{"type":"nope"}` + "\n",
		`{"TYPE":"put"}` + "\n" + "\x01\xff\xff\xff\xff",
		"not json\n",
		`{"type":"health"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Header
		line, lerr := bufio.NewReader(bytes.NewReader(data)).ReadBytes('\n')
		if lerr == nil && json.Unmarshal(line, &h) == nil && h.Type == TypeExec {
			return // as serveStream reads it: an exec
		}
		headerOK := lerr == nil && json.Unmarshal(line, &h) == nil && h.Type != ""
		defer watchdog(data)()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		host, guest := net.Pipe()
		hd := &countingHandler{}
		serveGuest(t, &Guest{Handler: hd, Key: testKey}, host, guest)
		s, err := Upgrade(ctx, host, testKey)
		if err != nil {
			t.Fatalf("Upgrade: %v", err)
		}
		defer s.Close()
		st, err := s.mux.OpenStream()
		if err != nil {
			t.Fatalf("opening a stream: %v", err)
		}
		go func() {
			st.Write(data)
			st.Close()
		}()
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, rerr := io.ReadAll(st)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			t.Fatalf("reading the guest's answer: %v", rerr)
		}
		if lerr == nil {
			rep, err := readReply(bufio.NewReader(bytes.NewReader(resp)), DefaultMaxLine, "VM fuzz")
			if err != nil {
				t.Fatalf("the guest's answer to %q has no reply line the host accepts: %v (%q)", line, err, resp)
			}
			if rep.Error != nil {
				switch rep.Error.Code {
				case CodeBadRequest, CodeUnknownType, CodeInternal:
				default:
					t.Fatalf("reply code %q is none the guest documents for a stream", rep.Error.Code)
				}
			}
			if !headerOK && (rep.Error == nil || rep.Error.Code != CodeBadRequest) {
				t.Fatalf("a line that is not a header (%q) got %+v", line, rep)
			}
		}
		hd.mu.Lock()
		calls := hd.calls
		hd.mu.Unlock()
		if calls > 1 || calls == 1 && h.Type != TypeHealth && h.Type != TypePut && h.Type != TypeGet {
			t.Fatalf("the handler served %d requests for a %q header", calls, h.Type)
		}
		if _, err := s.Health(ctx); err != nil {
			t.Fatalf("after the stream %q the session no longer answers: %v", data, err)
		}
	})
}
