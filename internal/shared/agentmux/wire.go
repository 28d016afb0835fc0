package agentmux

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/hashicorp/yamux"
)

const (
	// Protocol is the protocol version this package speaks.
	Protocol = 2
	// TypeUpgrade is the v1 request type that switches the channel to v2.
	TypeUpgrade = "upgrade"
	// MaxFramePayload bounds one frame's payload; the reader checks a
	// frame's length before it allocates.
	MaxFramePayload = 1 << 20
	// chunkSize is how much one data frame carries when we write.
	chunkSize = 32 << 10
)

// Stream request types.
const (
	TypeExec   = "exec"
	TypePut    = "put"
	TypeGet    = "get"
	TypeHealth = "health"
	TypeCall   = "call"
	TypeAttach = "attach"
	// TypeDial connects to a TCP port on the guest's loopback and
	// relays the stream's bytes both ways (see Session.Dial).
	TypeDial = "dial"
)

// Error codes carried in Error.Code.
const (
	CodeUnknownType = agentproto.CodeUnknownType
	CodeBadRequest  = agentproto.CodeBadRequest
	CodeInternal    = agentproto.CodeInternal
	// CodeExecFailed: the command could not be started (not found, not
	// executable, bad cwd).
	CodeExecFailed = "exec_failed"
	// CodeDialRefused: nothing listens on the guest port of a dial.
	CodeDialRefused = "dial_refused"
	// CodeDialBusy: the agent relays as many dials as it allows.
	CodeDialBusy = "dial_busy"
)

// Error is a request the guest could not serve. Message names the next
// action. A Handler may return an *Error to choose the code the host sees.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "agent: " + e.Message + " (" + e.Code + ")" }

// Frame channels.
const (
	chStdin    byte = 1 // host→guest: stdin bytes
	chStdinEOF byte = 2 // host→guest: close the process's stdin
	chResize   byte = 3 // host→guest: rows, cols (uint16 each)
	chStdout   byte = 4 // guest→host
	chStderr   byte = 5 // guest→host
	chExit     byte = 6 // guest→host: JSON ExitStatus
	chData     byte = 7 // put/get payload bytes
	chEnd      byte = 8 // put: end of data; get, attach: JSON Reply
	// chOutput, guest→host (attach): stream code, offset, data or dropped.
	chOutput byte = 9
	// chStdinError, guest→host (attach): why stdin could not be delivered.
	chStdinError byte = 10
)

// upgradeMsg is every line-mode message of the handshake: upgrade,
// challenge, auth, upgrade-ok and the refusals (a v1 Request / Response
// shape: "id" first, so the glued-line recovery finds it).
type upgradeMsg struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Protocol  int               `json:"protocol,omitempty"`
	Nonce     string            `json:"nonce,omitempty"`
	Challenge string            `json:"challenge,omitempty"`
	MAC       string            `json:"mac,omitempty"`
	Proof     string            `json:"proof,omitempty"`
	Error     *agentproto.Error `json:"error,omitempty"`
}

// Header is the first line the host writes on a stream: Type and the
// fields of that type.
type Header struct {
	Type string `json:"type"`
	// Exec is the command of an exec request.
	Exec *ExecRequest `json:"exec,omitempty"`
	// Path and Op are a put or get request (see Transfer).
	Path string `json:"path,omitempty"`
	Op   string `json:"op,omitempty"`
	// Method and Params are a call request; Params also carries a put's
	// or get's own parameters (Transfer.Params).
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	// Attach is an attach request.
	Attach *AttachRequest `json:"attach,omitempty"`
	// Port is a dial request's guest TCP port.
	Port int `json:"port,omitempty"`
}

// Reply is the guest's reply line on a stream, and the payload of the end
// frame that closes a get or an attach. Error set means the request failed.
type Reply struct {
	Error  *Error             `json:"error,omitempty"`
	Health *agentproto.Health `json:"health,omitempty"`
	// Result is a call's, attach's or put's result, as its handler's
	// value marshalled; absent when the handler returned nil.
	Result json.RawMessage `json:"result,omitempty"`
}

// Transfer names a put or get: the header's path and op. What they mean
// (a directory to unpack a tar stream into, a single file, ...) is the
// Handler's business.
type Transfer struct {
	Path string
	Op   string
	// Params are the operation's own parameters (JSON), if it has any;
	// an agent that predates them ignores them.
	Params json.RawMessage
}

// ExecRequest is a command to run in the guest.
type ExecRequest struct {
	// Argv is the command; Argv[0] is looked up in the agent's PATH.
	Argv []string `json:"argv"`
	// Env is added to the agent's environment (later entries win).
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory; "" is the agent's.
	Cwd string `json:"cwd,omitempty"`
	// TTY runs the command on a pseudo-terminal of Rows×Cols (24×80 when
	// zero); its output arrives on stdout only.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Resize, when set on a TTY request, carries window size changes to
	// the guest until Exec returns. Host side only.
	Resize <-chan WindowSize `json:"-"`
}

// WindowSize is a terminal size.
type WindowSize struct {
	Rows, Cols uint16
}

// ExitStatus is how a command ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal ended the process.
	Code int `json:"code"`
	// Signal is the number of the signal that ended the process, 0 if none.
	Signal int `json:"signal,omitempty"`
	// SignalName is Signal's name, e.g. "SIGKILL".
	SignalName string `json:"signal_name,omitempty"`
}

// Signaled reports whether a signal ended the process.
func (s ExitStatus) Signaled() bool { return s.Signal != 0 }

func (s ExitStatus) String() string {
	if s.Signaled() {
		return "killed by " + s.SignalName
	}
	return fmt.Sprintf("exit code %d", s.Code)
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// yamuxConfig is the session configuration of both ends.
func yamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	return c
}

// hostYamuxConfig is the host's session configuration: a guest that
// does not acknowledge a stream the host opens within the reply timeout
// has its session closed (yamux's StreamOpenTimeout), so no OpenStream
// waits longer for the guest's credit.
func (c Config) hostYamuxConfig() *yamux.Config {
	y := yamuxConfig()
	y.StreamOpenTimeout = c.replyTimeout()
	return y
}

// resetLine is what the guest writes when it starts serving a channel: a
// v1-shaped message no host request matches (see Guest.Serve).
const resetLine = `{"id":"","type":"reset"}`

// messageStart is how every line-mode message begins on the wire.
const messageStart = `{"id":`

// decodeLine unmarshals a line into v, or its tail from the last message
// start: a partial line left by an earlier connection gets the next
// message glued on.
func decodeLine(line []byte, v any) bool {
	if json.Unmarshal(line, v) == nil {
		return true
	}
	if i := bytes.LastIndex(line, []byte(messageStart)); i > 0 {
		return json.Unmarshal(line[i:], v) == nil
	}
	return false
}

// writeLine writes v as one line, starting with a newline that ends any
// partial line an earlier connection left at the other end.
func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(append([]byte{'\n'}, b...), '\n'))
	return err
}

// lineReader reads lines from src and hands what it has buffered to a
// later reader (Read), so a protocol switch loses no bytes. unread pushes
// bytes back in front.
type lineReader struct {
	src io.Reader
	buf []byte
	err error // src's error, returned once buf is empty
	// max bounds a line (DefaultMaxLine when 0); longer lines are
	// skipped, so buf never holds more than max plus one read.
	max int
	// budget, when set, is what next may read from src in all; past it
	// next returns budget.err.
	budget *readBudget
}

// readBudget bounds what a lineReader reads.
type readBudget struct {
	left int64
	err  error
}

// lineChunk is how much lineReader reads at a time.
const lineChunk = 32 << 10

// next returns the next line without its newline and surrounding space,
// skipping lines longer than max.
func (l *lineReader) next() ([]byte, error) {
	skipping := false
	max := orDefault(l.max, DefaultMaxLine)
	for {
		if i := bytes.IndexByte(l.buf, '\n'); i >= 0 {
			line := bytes.Clone(bytes.TrimSpace(l.buf[:i]))
			l.buf = l.buf[i+1:]
			if skipping || i > max {
				skipping = false
				continue
			}
			return line, nil
		}
		if len(l.buf) > max {
			l.buf, skipping = nil, true
		}
		if l.err != nil {
			return nil, l.err
		}
		size := int64(lineChunk)
		if l.budget != nil {
			if l.budget.left <= 0 {
				return nil, l.budget.err
			}
			size = min(size, l.budget.left)
		}
		chunk := make([]byte, size)
		n, err := l.src.Read(chunk)
		if l.budget != nil {
			l.budget.left -= int64(n)
		}
		l.buf = append(l.buf, chunk[:n]...)
		l.err = err
	}
}

// Read drains the buffer, then reads src.
func (l *lineReader) Read(p []byte) (int, error) {
	if len(l.buf) > 0 {
		n := copy(p, l.buf)
		l.buf = l.buf[n:]
		return n, nil
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.src.Read(p)
}

// unread puts b in front of what is buffered.
func (l *lineReader) unread(b []byte) {
	l.buf = append(bytes.Clone(b), l.buf...)
}

// frameWriter writes frames on one stream; it is safe for concurrent use.
type frameWriter struct {
	mu   sync.Mutex
	w    io.Writer
	shut atomic.Bool
}

func (f *frameWriter) frame(ch byte, p []byte) error { return f.send(ch, false, p) }

// last writes a frame and stops the writer in one step: nothing another
// goroutine sends can follow it.
func (f *frameWriter) last(ch byte, p []byte) error { return f.send(ch, true, p) }

// send writes one frame whose payload is parts joined.
func (f *frameWriter) send(ch byte, stop bool, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	buf := make([]byte, 5, 5+n)
	buf[0] = ch
	binary.BigEndian.PutUint32(buf[1:5], uint32(n))
	for _, p := range parts {
		buf = append(buf, p...)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shut.Load() {
		return errFramesShut
	}
	if stop {
		f.shut.Store(true)
	}
	_, err := f.w.Write(buf)
	return err
}

// errFramesShut is a frame refused after stop.
var errFramesShut = errors.New("agentmux: the stream's protocol has ended")

// stop makes later frames fail without writing, so a goroutine that
// outlives its protocol (a stdin pump) leaves the stream to its owner. It
// does not wait for a write in progress.
func (f *frameWriter) stop() { f.shut.Store(true) }

// data writes p as frames of channel ch, at most chunkSize each.
func (f *frameWriter) data(ch byte, p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), chunkSize)]
		if err := f.frame(ch, c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

// channelWriter is an io.Writer onto one frame channel.
type channelWriter struct {
	f  *frameWriter
	ch byte
}

func (c channelWriter) Write(p []byte) (int, error) { return c.f.data(c.ch, p) }

// errFrameTooLarge is a frame whose header announces more than
// MaxFramePayload; readFrame checks it before allocating.
var errFrameTooLarge = &LimitError{Peer: "the agent", What: "a frame", Limit: MaxFramePayload}

// readFrame reads one frame.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFramePayload {
		return 0, nil, errFrameTooLarge
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, noEOF(err)
	}
	return hdr[0], p, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errLineTooLong is a line longer than readLine's max.
var errLineTooLong = errors.New("line too long")

// readLine reads one line of at most max bytes (newline excluded) from r:
// it never holds more than max plus r's buffer.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max+1 || (err == bufio.ErrBufferFull && len(line)+len(frag) > max) {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line, nil
		case err != bufio.ErrBufferFull:
			return nil, err
		}
	}
}

// readReply reads one reply line of at most max bytes from a stream. A
// longer line is a *LimitError naming peer.
func readReply(r *bufio.Reader, max int, peer string) (Reply, error) {
	for {
		line, err := readLine(r, max)
		if errors.Is(err, errLineTooLong) {
			return Reply{}, &LimitError{Peer: peer, What: "a reply line", Limit: int64(max)}
		}
		if err != nil {
			return Reply{}, noEOF(err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rep Reply
		if err := json.Unmarshal(line, &rep); err != nil {
			return Reply{}, fmt.Errorf("malformed reply line %q: %w", line, err)
		}
		return rep, nil
	}
}

func resizePayload(ws WindowSize) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], ws.Rows)
	binary.BigEndian.PutUint16(b[2:], ws.Cols)
	return b[:]
}

// deadliner is implemented by streams whose blocked I/O can be interrupted.
type deadliner interface {
	SetDeadline(time.Time) error
}

func aLongTimeAgo() time.Time { return time.Unix(1, 0) }

var zeroTime time.Time
