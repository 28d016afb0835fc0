package agentmux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHealth(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, tr, &fakeHandler{})
			got, err := s.Health(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			want := sampleHealth
			want.Protocol = Protocol
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("health (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExec(t *testing.T) {
	tests := []struct {
		name       string
		argv       []string
		stdin      string // "" is a nil stdin
		want       ExitStatus
		wantOut    string
		wantErrOut string
	}{
		{
			name:       "stdout and stderr separated, exit code kept",
			argv:       []string{"sh", "-c", "echo out; echo err >&2; exit 3"},
			want:       ExitStatus{Code: 3},
			wantOut:    "out\n",
			wantErrOut: "err\n",
		},
		{
			name:    "stdin data then EOF",
			argv:    []string{"cat"},
			stdin:   "hello\nworld\n",
			wantOut: "hello\nworld\n",
		},
		{
			name:    "nil stdin is empty",
			argv:    []string{"sh", "-c", "wc -c"},
			wantOut: "0\n",
		},
		{
			name: "killed by a signal",
			argv: []string{"sh", "-c", "kill -KILL $$"},
			want: ExitStatus{Code: -1, Signal: 9, SignalName: "SIGKILL"},
		},
		{
			name:    "env and cwd",
			argv:    []string{"sh", "-c", `echo "$BANGER_X $(pwd)"`},
			wantOut: "y /\n",
		},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, tr, nil)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var out, errOut bytes.Buffer
					req := ExecRequest{Argv: tt.argv, Env: []string{"BANGER_X=y"}, Cwd: "/"}
					var stdin io.Reader
					if tt.stdin != "" {
						stdin = strings.NewReader(tt.stdin)
					}
					got, err := s.Exec(testContext(t), req, stdin, &out, &errOut)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("status (-want +got):\n%s", diff)
					}
					if out.String() != tt.wantOut || errOut.String() != tt.wantErrOut {
						t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), tt.wantOut, tt.wantErrOut)
					}
				})
			}
		})
	}
}

// TestRunExecOnStream runs the exec protocol on a stream from Open, as a
// daemon does when it hands the stream to a CLI: directly, and through a
// splice onto another connection.
func TestRunExecOnStream(t *testing.T) {
	tests := []struct {
		name   string
		splice bool
	}{
		{name: "on the stream"},
		{name: "through a splice", splice: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, transports[1], nil)
			ctx := testContext(t)
			req := ExecRequest{Argv: []string{"sh", "-c", "cat; echo err >&2; exit 4"}}
			st, _, err := s.Open(ctx, Header{Type: TypeExec, Exec: &req})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var rw io.ReadWriter = st
			if tt.splice {
				cli, daemon := net.Pipe()
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); io.Copy(daemon, st); daemon.Close() }()
				go func() { defer wg.Done(); io.Copy(st, daemon); st.Close() }()
				defer wg.Wait()
				defer cli.Close()
				rw = cli
			}
			var out, errOut bytes.Buffer
			got, err := RunExec(ctx, rw, req, strings.NewReader("spliced\n"), &out, &errOut)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ExitStatus{Code: 4}, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if out.String() != "spliced\n" || errOut.String() != "err\n" {
				t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
			}
		})
	}
}

func TestExecLargeStdin(t *testing.T) {
	s := newSession(t, transports[1], nil)
	data := make([]byte, 3<<20)
	rand.Read(data)
	var out bytes.Buffer
	st, err := s.Exec(testContext(t), ExecRequest{Argv: []string{"cat"}}, bytes.NewReader(data), &out, nil)
	if err != nil || st.Code != 0 {
		t.Fatalf("Exec = %v, %v", st, err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Errorf("cat returned %d bytes, not the %d sent", out.Len(), len(data))
	}
}

func TestExecStartFailure(t *testing.T) {
	s := newSession(t, transports[0], nil)
	_, err := s.Exec(testContext(t), ExecRequest{Argv: []string{"/nonexistent/banger-test"}}, nil, nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeExecFailed || !strings.Contains(e.Message, "/nonexistent/banger-test") {
		t.Errorf("error = %#v, want an *Error with code %s", err, CodeExecFailed)
	}
	for _, tt := range []struct {
		req  ExecRequest
		want string
	}{
		{ExecRequest{Argv: []string{"banger-no-such-command"}}, "banger-no-such-command: command not found in the guest's PATH"},
		{ExecRequest{Argv: []string{"true"}, Cwd: "/nonexistent/dir"}, "working directory /nonexistent/dir does not exist"},
		{ExecRequest{Argv: []string{"true"}, Cwd: "/nonexistent/dir", TTY: true}, "working directory /nonexistent/dir does not exist"},
	} {
		_, err := s.Exec(testContext(t), tt.req, nil, nil, nil)
		if !errors.As(err, &e) || e.Code != CodeExecFailed || !strings.Contains(e.Message, tt.want) {
			t.Errorf("%+v: error = %v, want %q", tt.req, err, tt.want)
		}
	}
	// The session still serves requests.
	if _, err := s.Exec(testContext(t), ExecRequest{Argv: []string{"true"}}, nil, nil, nil); err != nil {
		t.Errorf("exec after a failure: %v", err)
	}
}

func TestExecTTYResize(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, tr, nil)
			resize := make(chan WindowSize)
			out := newSignalWriter("30 100")
			// The command waits for the terminal size to change; no timing.
			script := `test -t 0 && stty size; while [ "$(stty size)" = "30 100" ]; do sleep 0.01; done; stty size`
			req := ExecRequest{Argv: []string{"sh", "-c", script}, TTY: true, Rows: 30, Cols: 100, Resize: resize}
			type result struct {
				st  ExitStatus
				err error
			}
			done := make(chan result, 1)
			go func() {
				st, err := s.Exec(testContext(t), req, nil, out, nil)
				done <- result{st, err}
			}()
			select {
			case <-out.seen:
			case r := <-done:
				t.Fatalf("exec ended before printing its size: %+v, output %q", r, out.String())
			}
			resize <- WindowSize{Rows: 40, Cols: 120}
			r := <-done
			if r.err != nil || r.st.Code != 0 {
				t.Fatalf("Exec = %v, %v; output %q", r.st, r.err, out.String())
			}
			if got, want := out.String(), "30 100\r\n40 120\r\n"; got != want {
				t.Errorf("output %q, want %q", got, want)
			}
		})
	}
}

func TestConcurrentExecs(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, tr, nil)
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var out bytes.Buffer
					in := strings.NewReader(strings.Repeat(fmt.Sprintf("line %d\n", i), 1000))
					st, err := s.Exec(testContext(t), ExecRequest{Argv: []string{"sh", "-c", `cat; exit "$0"`, fmt.Sprint(i)}}, in, &out, nil)
					switch {
					case err != nil:
						errs[i] = err
					case st.Code != i:
						errs[i] = fmt.Errorf("exit %v, want %d", st, i)
					case out.String() != in2(i):
						errs[i] = fmt.Errorf("output of %d bytes does not match", out.Len())
					}
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("exec %d: %v", i, err)
				}
			}
		})
	}
}

func in2(i int) string { return strings.Repeat(fmt.Sprintf("line %d\n", i), 1000) }

func TestPutGet(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			h := &fakeHandler{}
			s := newSession(t, tr, h)
			ctx := testContext(t)
			data := make([]byte, 10<<20)
			rand.Read(data)
			req := Transfer{Path: "/root/repo", Op: "untar"}
			var res putResult
			if err := s.Put(ctx, req, bytes.NewReader(data), &res); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if diff := cmp.Diff(putResult{Bytes: len(data), Op: "untar"}, res); diff != "" {
				t.Errorf("put result (-want +got):\n%s", diff)
			}
			var got bytes.Buffer
			if err := s.Get(ctx, Transfer{Path: "/root/repo"}, &got); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Errorf("Get returned %d bytes that differ from the %d put", got.Len(), len(data))
			}
			if diff := cmp.Diff([]Transfer{req}, h.puts); diff != "" {
				t.Errorf("puts (-want +got):\n%s", diff)
			}
			// A nil result is fine.
			if err := s.Put(ctx, Transfer{Path: "/root/other"}, strings.NewReader("x"), nil); err != nil {
				t.Errorf("Put without a result: %v", err)
			}
		})
	}
}

func TestRequestErrors(t *testing.T) {
	h := &fakeHandler{}
	s := newSession(t, transports[1], h)
	ctx := testContext(t)
	tests := []struct {
		name string
		do   func() error
		want *Error
	}{
		{
			name: "a handler's *Error keeps its code",
			do: func() error {
				return s.Put(ctx, Transfer{Path: "/readonly"}, strings.NewReader(strings.Repeat("x", 1<<20)), nil)
			},
			want: &Error{Code: "read_only", Message: "/readonly is read-only"},
		},
		{
			name: "other handler errors are internal",
			do:   func() error { return s.Get(ctx, Transfer{Path: "/missing"}, io.Discard) },
			want: &Error{Code: CodeInternal, Message: "getting /missing: no such file: /missing"},
		},
		{
			name: "an unknown request type",
			do: func() error {
				st, _, err := s.Open(ctx, Header{Type: "teleport"})
				if err == nil {
					st.Close()
				}
				return err
			},
			want: &Error{Code: CodeUnknownType, Message: `unknown request type "teleport": this agent (protocol 2) serves exec, put, get, health, call, attach, dial; update banger-agent in the image`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *Error
			if err := tt.do(); !errors.As(err, &got) {
				t.Fatalf("error = %v, want an *Error", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no handler", func(t *testing.T) {
		s := newSession(t, transports[0], nil)
		_, err := s.Health(ctx)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnknownType {
			t.Errorf("error = %v, want unknown_type", err)
		}
	})
	t.Run("a put whose reader fails reaches the handler as a truncated stream", func(t *testing.T) {
		err := s.Put(ctx, Transfer{Path: "/broken"}, io.MultiReader(strings.NewReader("abc"), errReader{}), nil)
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("error = %v, want the reader's error", err)
		}
		if _, ok := h.files["/broken"]; ok {
			t.Error("the handler stored a truncated put")
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestUpgradeSkipsStaleLines puts what a virtio-serial port may hold from
// an earlier connection in front of the guest's real reply.
func TestUpgradeSkipsStaleLines(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			host, proxyHost := net.Pipe()
			proxyGuest, guest := tr.pair(t)
			serveGuest(t, &Guest{Handler: &fakeHandler{}, Key: testKey}, proxyGuest, guest)
			t.Cleanup(func() { host.Close(); proxyHost.Close() })
			go func() {
				r := bufio.NewReader(proxyHost)
				var req upgradeMsg
				for req.Nonce == "" {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					json.Unmarshal(line, &req)
				}
				stale := func(id, nonce string) string {
					b, _ := json.Marshal(upgradeMsg{ID: id, Type: TypeUpgrade, Protocol: Protocol, Nonce: nonce})
					return string(b) + "\n"
				}
				junk := "garbage\n\x00\x01\x02\n{not json\n\x00\x00\x00\x01" +
					stale(req.ID, "another-nonce") + stale("another-id", req.Nonce) + `{"id":"old","ty`
				proxyHost.Write([]byte(junk))
				proxyGuest.Write([]byte("\n" + mustJSON(req) + "\n"))
				go io.Copy(proxyGuest, r)
				io.Copy(proxyHost, proxyGuest)
			}()
			s, err := Upgrade(testContext(t), host, testKey)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Health(testContext(t)); err != nil {
				t.Errorf("health after the upgrade: %v", err)
			}
		})
	}
}

// readOneLine reads one line from r a byte at a time, so nothing after it
// is taken from the stream.
func readOneLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := r.Read(b); err != nil {
			return line, err
		}
		if b[0] == '\n' {
			return line, nil
		}
		line = append(line, b[0])
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// oldAgent plays an agent of an earlier release on guest: it reads the
// host's upgrade request and writes the exact bytes reply(id, nonce)
// returns, as that release wrote them.
func oldAgent(t *testing.T, guest io.ReadWriteCloser, reply func(id, nonce string) string) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { guest.Close(); <-done })
	go func() {
		defer close(done)
		r := bufio.NewReader(guest)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct{ ID, Type, Nonce string }
			if json.Unmarshal(line, &req) != nil || req.Type != "upgrade" {
				continue
			}
			if _, err := io.WriteString(guest, reply(req.ID, req.Nonce)); err != nil {
				return
			}
		}
	}()
}

// Agents of earlier releases: the host says the agent predates
// authenticated channels, whatever the transport.
func TestUpgradeOldAgents(t *testing.T) {
	tests := []struct {
		name  string
		reply func(id, nonce string) string
	}{
		{
			// Protocol 1 knew no upgrade: its answer to an unknown
			// request type.
			name: "protocol 1",
			reply: func(id, _ string) string {
				return `{"id":"` + id + `","type":"upgrade","error":{"code":"unknown_type","message":"unknown request type \"upgrade\": this agent (protocol 1) supports hello, health, probe_tcp, host_keys, poweroff; update banger-agent in the image"}}` + "\n"
			},
		},
		{
			// Protocol 2 before authentication accepted the upgrade at
			// once, without a challenge, and switched to yamux.
			name: "protocol 2 without a challenge",
			reply: func(id, nonce string) string {
				return `{"id":"` + id + `","type":"upgrade","protocol":2,"nonce":"` + nonce + `"}` + "\n"
			},
		},
	}
	for _, tt := range tests {
		for _, tr := range transports {
			t.Run(tt.name+"/"+tr.name, func(t *testing.T) {
				host, guest := tr.pair(t)
				defer host.Close()
				oldAgent(t, guest, tt.reply)
				_, err := Upgrade(testContext(t), host, testKey)
				if !errors.Is(err, ErrAgentTooOld) {
					t.Fatalf("Upgrade = %v, want ErrAgentTooOld", err)
				}
			})
		}
	}
}

// TestGuestRefusesUnauthenticated checks that a guest answers no request
// before a host authenticated (protocol 1 health, garbage, a stream
// header), and still upgrades afterwards on the same channel.
func TestGuestRefusesUnauthenticated(t *testing.T) {
	host, guest := socketPair(t)
	served := &fakeHandler{}
	serveGuest(t, &Guest{Handler: served, Key: testKey}, host, guest)
	// A protocol 1 health request, as a host of that release wrote it.
	host.SetDeadline(time.Now().Add(30 * time.Second))
	_, err := host.Write([]byte("\n{\"id\":\"h1\",\"type\":\"health\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The guest may say other things first (a reset line when it
	// starts); its answer is the line with the request's ID.
	var refused struct {
		ID     string
		Health json.RawMessage
		Error  *struct{ Code string }
	}
	var reply []byte
	for refused.ID != "h1" {
		if reply, err = readOneLine(host); err != nil {
			t.Fatalf("reading the answer to a v1 health request: %v", err)
		}
		refused.ID, refused.Health, refused.Error = "", nil, nil
		json.Unmarshal(reply, &refused)
	}
	if refused.Health != nil || refused.Error == nil || refused.Error.Code != CodeUnauthenticated {
		t.Fatalf("v1 health before authenticating answered %s; want refused as %s", reply, CodeUnauthenticated)
	}
	host.SetDeadline(time.Time{})
	// A stream header and garbage are not answered at all.
	host.Write([]byte("\n{\"type\":\"exec\",\"exec\":{\"argv\":[\"touch\",\"/tmp/pwned\"]}}\nnot json\n"))
	s, err := Upgrade(testContext(t), host, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Health(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

// TestGuestResync plays a host that dies mid-session on a long-lived byte
// stream and a new host connection that starts over on it.
func TestGuestResync(t *testing.T) {
	tests := []struct {
		name   string
		before string // what the new connection writes before upgrading
	}{
		{name: "upgrade at once"},
		{name: "garbage first", before: "garbage\x00\xff\n"},
		{name: "v1 request first", before: "\n" + `{"id":"r1","type":"health"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hostF, guestF := socketPair(t)
			done := serveGuest(t, &Guest{Handler: &fakeHandler{}, Key: testKey}, hostF, guestF)

			link1 := &hostLink{f: hostF}
			s1, err := Upgrade(testContext(t), link1, testKey)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s1.Health(testContext(t)); err != nil {
				t.Fatal(err)
			}
			// A command is running when the host goes away.
			started := newSignalWriter("started")
			stdin, stdinW := io.Pipe()
			defer stdinW.Close()
			execDone := make(chan error, 1)
			go func() {
				_, err := s1.Exec(testContext(t), ExecRequest{Argv: []string{"sh", "-c", "echo started; cat"}}, stdin, started, nil)
				execDone <- err
			}()
			<-started.seen
			link1.Close()
			if err := <-execDone; err == nil {
				t.Error("exec on the dead connection returned no error")
			}

			link2 := &hostLink{f: hostF}
			if _, err := link2.Write([]byte(tt.before)); err != nil {
				t.Fatal(err)
			}
			s2, err := Upgrade(testContext(t), link2, testKey)
			if err != nil {
				t.Fatalf("second Upgrade: %v", err)
			}
			defer s2.Close()
			var out bytes.Buffer
			st, err := s2.Exec(testContext(t), ExecRequest{Argv: []string{"echo", "again"}}, nil, &out, nil)
			if err != nil || st.Code != 0 || out.String() != "again\n" {
				t.Errorf("exec on the new session = %v, %v, %q", st, err, out.String())
			}
			select {
			case err := <-done:
				t.Errorf("Serve returned %v", err)
			default:
			}
		})
	}
}

func TestServeEnds(t *testing.T) {
	t.Run("EOF in line mode", func(t *testing.T) {
		host, guest := net.Pipe()
		done := serveGuest(t, &Guest{Key: testKey}, host, guest)
		host.Close()
		if err := <-done; !errors.Is(err, io.EOF) {
			t.Errorf("Serve = %v, want io.EOF", err)
		}
	})
	t.Run("EOF during a session", func(t *testing.T) {
		host, guest := socketPair(t)
		done := serveGuest(t, &Guest{Key: testKey}, host, guest)
		s, err := Upgrade(testContext(t), host, testKey)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := <-done; !errors.Is(err, io.EOF) {
			t.Errorf("Serve = %v, want io.EOF", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		host, guest := socketPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- (&Guest{Key: testKey}).Serve(ctx, guest) }()
		if _, err := Upgrade(testContext(t), host, testKey); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	})
}

func TestExecCancel(t *testing.T) {
	s := newSession(t, transports[1], nil)
	ctx, cancel := context.WithCancel(context.Background())
	started := newSignalWriter("started")
	done := make(chan error, 1)
	go func() {
		_, err := s.Exec(ctx, ExecRequest{Argv: []string{"sh", "-c", "echo started; exec sleep 1000"}}, nil, started, nil)
		done <- err
	}()
	<-started.seen
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Exec = %v, want context.Canceled", err)
	}
	// The session outlives the cancelled request.
	if _, err := s.Exec(testContext(t), ExecRequest{Argv: []string{"true"}}, nil, nil, nil); err != nil {
		t.Errorf("exec after a cancelled one: %v", err)
	}
}

// A restarted agent announces itself with a reset line before anything
// else, and that line ends a host session left over from the agent before
// it at once (rather than at yamux's keepalive timeout).
func TestGuestResetEndsStaleHostSession(t *testing.T) {
	// The first bytes of a fresh Serve are the reset line.
	h, g := socketPair(t)
	go (&Guest{Key: testKey}).Serve(testContext(t), g)
	want := "\n" + resetLine + "\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(h, got); err != nil || string(got) != want {
		t.Fatalf("a new agent first wrote %q (%v), want %q", got, err, want)
	}

	hostF, guestF := socketPair(t)
	ctx1, stop1 := context.WithCancel(testContext(t))
	done1 := make(chan error, 1)
	go func() { done1 <- (&Guest{Handler: &fakeHandler{}, Key: testKey}).Serve(ctx1, guestF) }()
	s1, err := Upgrade(testContext(t), &hostLink{f: hostF}, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Health(testContext(t)); err != nil {
		t.Fatal(err)
	}
	// The agent dies; a new one serves the same channel: the host's
	// session ends and a new upgrade works.
	stop1()
	<-done1
	guestF.SetDeadline(zeroTime)
	go (&Guest{Handler: &fakeHandler{}, Key: testKey}).Serve(testContext(t), guestF)
	select {
	case <-s1.Done():
	case <-testContext(t).Done():
		t.Fatal("the stale host session outlived the new agent's reset line")
	}
	s2, err := Upgrade(testContext(t), &hostLink{f: hostF}, testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Health(testContext(t)); err != nil {
		t.Fatal(err)
	}
}
