package agentmux

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fuzz targets drive the host end with arbitrary guest bytes. Their
// seeds are in testdata/fuzz; plain `go test` runs only those, and
// `go test -fuzz=FuzzHostUpgrade ./internal/shared/agentmux` searches further.

// Tokens a FuzzHostUpgrade input may hold; the fake guest replaces them
// with what only the real agent would know, so the fuzzer reaches the
// session.
const (
	tokID    = "@ID@"    // the host's upgrade request ID
	tokNonce = "@NONCE@" // its nonce
	tokProof = "@PROOF@" // the guest's proof for fuzzChallenge
	// tokWait splits the input: each part is readable only once the host
	// wrote once more (its upgrade, its auth line, its first frames).
	tokWait = "@WAIT@"
)

// fuzzChallenge is the challenge the seeds send.
var fuzzChallenge = bytes.Repeat([]byte{0x11}, randomSize)

// fuzzGuest is the channel as the host sees it: what the host writes is
// parsed for its request ID and nonce; reads return the input's parts.
type fuzzGuest struct {
	mu     sync.Mutex
	cond   *sync.Cond
	parts  [][]byte
	writes int
	buf    []byte // the part being read, tokens replaced
	next   int    // the next part
	closed bool
	req    upgradeMsg
	wbuf   []byte
	read   int
}

func newFuzzGuest(data []byte) *fuzzGuest {
	g := &fuzzGuest{parts: bytes.Split(data, []byte(tokWait))}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *fuzzGuest) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, io.ErrClosedPipe
	}
	g.writes++
	if g.req.Nonce == "" {
		g.wbuf = append(g.wbuf, p...)
		for _, line := range bytes.Split(g.wbuf, []byte("\n")) {
			var m upgradeMsg
			if decodeLine(bytes.TrimSpace(line), &m) && m.Type == TypeUpgrade {
				g.req = m
			}
		}
	}
	g.cond.Broadcast()
	return len(p), nil
}

func (g *fuzzGuest) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.buf) == 0 {
		if g.closed {
			return 0, io.ErrClosedPipe
		}
		if g.next == len(g.parts) {
			return 0, io.EOF
		}
		if g.writes <= g.next {
			g.cond.Wait()
			continue
		}
		g.buf = g.expand(g.parts[g.next])
		g.next++
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	g.read += n
	return n, nil
}

func (g *fuzzGuest) expand(part []byte) []byte {
	nonce, _ := hex.DecodeString(g.req.Nonce)
	part = bytes.ReplaceAll(part, []byte(tokID), []byte(g.req.ID))
	part = bytes.ReplaceAll(part, []byte(tokNonce), []byte(g.req.Nonce))
	return bytes.ReplaceAll(part, []byte(tokProof), []byte(hex.EncodeToString(proof(testKey, guestLabel, nonce, fuzzChallenge))))
}

func (g *fuzzGuest) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.cond.Broadcast()
	return nil
}

// fuzzConfig keeps one run short: small limits, short waits.
var fuzzConfig = Config{
	Peer:            "VM fuzz",
	UpgradeTimeout:  20 * time.Millisecond,
	ReplyTimeout:    20 * time.Millisecond,
	MaxLine:         4 << 10,
	MaxCallReply:    8 << 10,
	MaxUpgradeBytes: 64 << 10,
}

// FuzzHostUpgrade: whatever the guest sends, Upgrade returns, reads no
// more than its byte limit in line mode, and succeeds only for a guest
// that proved the key; a session it returns serves calls that return.
func FuzzHostUpgrade(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(data)()
		g := newFuzzGuest(data)
		s, err := fuzzConfig.Upgrade(context.Background(), g, testKey)
		if err != nil {
			g.mu.Lock()
			read := g.read
			g.mu.Unlock()
			if read > int(fuzzConfig.MaxUpgradeBytes)+lineChunk {
				t.Fatalf("Upgrade read %d bytes, over its limit %d", read, fuzzConfig.MaxUpgradeBytes)
			}
			return
		}
		if !bytes.Contains(data, []byte(tokProof)) {
			t.Fatalf("Upgrade accepted a guest that did not prove the key: %q", data)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Health(ctx)
		var v any
		s.Call(ctx, "session.list", nil, &v)
		s.HostKeys(ctx)
		s.Close()
	})
}

// watchdog crashes the fuzz worker, with every goroutine's stack and the
// input, when one run hangs: a hang is a finding (a host call that never
// returns), and a crash is what the fuzzer records. The returned func
// stops it.
func watchdog(data []byte) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			panic(fmt.Sprintf("a run hung on input %q:\n%s", data, buf[:n]))
		}
	}()
	return func() { close(done) }
}

// fuzzStream is a request stream whose guest sends Reader; what the
// host sends is discarded.
type fuzzStream struct {
	io.Reader
}

func (fuzzStream) Write(p []byte) (int, error) { return len(p), nil }

// FuzzHostStream: whatever a guest sends on a request stream, the reply
// reader, exec, get and attach return without reading past their limits
// or panicking.
func FuzzHostStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(data)()
		const maxLine = 1 << 10
		rep, err := readReply(bufio.NewReaderSize(bytes.NewReader(data), 16), maxLine, "VM fuzz")
		if err == nil && len(rep.Result) > maxLine {
			t.Fatalf("a reply with a result of %d bytes passed a %d-byte limit", len(rep.Result), maxLine)
		}
		if i := bytes.IndexByte(data, '\n'); (i < 0 || i > maxLine) && err == nil {
			t.Fatalf("readReply accepted a line of %d bytes, over %d", i, maxLine)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		RunExec(ctx, fuzzStream{bytes.NewReader(data)}, ExecRequest{Argv: []string{"x"}}, nil, io.Discard, io.Discard)
		a := NewAttached(fuzzStream{bytes.NewReader(data)})
		for range 10_000 {
			if _, err := a.Next(); err != nil {
				break
			}
		}
		var v any
		a.Final(&v)
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			_, p, err := readFrame(r)
			if err != nil {
				break
			}
			if len(p) > MaxFramePayload {
				t.Fatalf("a frame of %d bytes passed", len(p))
			}
		}
	})
}

// The valid-session seed takes the fuzz harness through the handshake to
// an answered health request, so the fuzzer starts from inside a session.
func TestFuzzSeedReachesTheSession(t *testing.T) {
	b, err := os.ReadFile("testdata/fuzz/FuzzHostUpgrade/valid-session")
	if err != nil {
		t.Fatal(err)
	}
	lit, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte(")
	data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if !ok || err != nil {
		t.Fatalf("unreadable seed: %v", err)
	}
	s, err := fuzzConfig.Upgrade(context.Background(), newFuzzGuest([]byte(data)), testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h, err := s.Health(testContext(t))
	if err != nil || h.Hostname != "fuzz" {
		t.Errorf("Health = %+v, %v; want the seed's report", h, err)
	}
}
