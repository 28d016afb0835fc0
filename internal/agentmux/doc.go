// Package agentmux is banger's host↔agent protocol v2: a yamux session
// over the agent channel, started by an upgrade from the v1 line protocol,
// with one stream per request (exec, file transfer, health, call, attach).
//
// It owns both ends: the host side (Upgrade, Session and its calls, and
// the frame protocols RunExec and Attached) and the guest side
// (Guest.Serve), and it is transport-only: what put, get, health, call and
// attach do inside the guest is decided by a Handler that banger-agent
// supplies (call and attach through the optional Caller and Attacher
// interfaces). Exec is generic (os/exec, and creack/pty for a terminal),
// so the guest side implements it here.
//
// # Upgrade
//
// The agent channel starts in v1 line mode (see internal/agentproto). The
// host writes one v1-style request line
//
//	{"id":"<random>","type":"upgrade","protocol":2,"nonce":"<random>"}
//
// An agent that only speaks v1 answers it with an unknown_type error, which
// Upgrade reports as ErrUpgradeUnsupported ("update banger-agent"). A v2
// agent answers
//
//	{"id":"<same>","type":"upgrade","protocol":2,"nonce":"<same>"}
//
// and from the byte after that line both ends run yamux: the host as the
// client, the guest as the server. Because a virtio-serial port keeps bytes
// queued across host connections, the host skips every line that is not
// the reply with its own ID and nonce (garbage, replies meant for an
// earlier connection, yamux frames an earlier session left behind), and
// both ends start their lines with a newline.
//
// # Resync
//
// The guest must survive a host that disappears mid-session and a new host
// connection that starts over on the same byte stream. Guest.Serve owns the
// stream: it reads lines, answers upgrades itself and hands every other
// line to an optional v1 line handler. When the yamux session fails — most
// often because a new host connection writes v1 lines, which are not valid
// yamux frames — Serve goes back to line mode. yamux buffers what it reads,
// so Serve records the last bytes the session read and replays them to the
// line reader from the first "\n{\"id\":" on: the new host's request that
// broke the session is not lost. Requests a new host sends while the guest
// has not noticed yet are therefore answered, not dropped; a host that
// gets no answer retries (Upgrade with a short timeout per attempt) and
// skips the stale replies to its earlier attempts.
//
// The other way round — the agent restarts under a live host session —
// Serve begins every channel with a reset line, {"id":"","type":"reset"}.
// A host in line mode skips it like any stale line; a host still running
// a yamux session with the previous agent reads it as a malformed frame,
// so that session (and its streams) fail at once instead of at the
// keepalive timeout, and the host's next request upgrades again.
//
// # Streams
//
// Each request opens one yamux stream. The host writes one JSON header
// line (Header) naming the request:
//
//	{"type":"exec","exec":{"argv":[...],"env":[...],"cwd":"...","tty":true,"rows":24,"cols":80}}
//	{"type":"put","path":"/root/repo","op":"..."}
//	{"type":"get","path":"/root/repo","op":"..."}
//	{"type":"health"}
//	{"type":"call","method":"...","params":{...}}
//	{"type":"attach","attach":{"session":"...","since":-1,"follow":true}}
//
// The guest answers with one JSON reply line (Reply): {} to go ahead, the
// result ({"health":{...}} for health, {"result":...} for call and
// attach), or {"error":{"code":"...","message":"..."}} when it cannot
// serve the request; the host returns that as an *Error. A guest without
// a Handler refuses every type but exec, and one whose Handler lacks
// Caller or Attacher refuses call or attach, with CodeUnknownType. After an accepting reply the stream carries
// frames: one channel byte, a 4-byte big-endian payload length, the
// payload (at most MaxFramePayload). Channel bytes:
//
//	1 stdin        host→guest  data (exec, attach)
//	2 stdin-eof    host→guest  empty (exec, attach)
//	3 resize       host→guest  rows, cols: big-endian uint16 each (exec, attach)
//	4 stdout       guest→host  data (exec)
//	5 stderr       guest→host  data (exec)
//	6 exit         guest→host  JSON ExitStatus (exec)
//	7 data         either way  data (put, get)
//	8 end          either way  put: empty, from the host; get, attach: JSON Reply, from the guest
//	9 output       guest→host  stream code, offset, data or dropped (attach)
//	10 stdin-error guest→host  message text (attach)
//
// Session.Open is the raw form of a request: it writes a Header, reads the
// Reply and returns a *Stream positioned after the reply line. The frame
// protocols after the reply run on any io.ReadWriter (RunExec,
// NewAttached), so a daemon can splice a Stream to another connection (a
// CLI's upgraded HTTP connection) and let the far end speak them.
//
// Exec, host to guest: stdin (data), stdin-eof (the process's stdin is
// closed; ignored in TTY mode), resize. Guest to host: stdout, stderr
// (never in TTY mode: the terminal's bytes are stdout), then exactly one
// exit frame, after which the guest closes the stream. A host that closes
// its end before the exit frame has gone away: the guest kills the
// process.
//
// Put: data frames then one end frame from the host; the guest hands the
// bytes to Handler.Put with the header's path and op (a Transfer; a
// stream ending without the end frame is io.ErrUnexpectedEOF there) and
// answers with a final reply line carrying Put's result. Get: the guest
// sends data frames from Handler.Get and one end frame whose payload is
// the final reply ({} or {"error":...}).
//
// Call: the reply line is the whole answer: Caller.Call's result
// marshalled into "result" (absent for a nil result), or an error.
//
// # Attach
//
// An attach joins a long-lived guest session through Attacher.Attach,
// whose result (session info, say) is the reply line's "result". Then the
// guest sends each Chunk that Attachment.Next yields as output frames:
// one byte stream code (1 stdout, 2 stderr, 3 tty, 4 gap), the chunk's
// absolute offset as a big-endian int64, then the data, or for a gap the
// big-endian int64 count of bytes dropped from that offset on. A chunk
// whose data does not fit one frame is split into several, each with its
// own offset. The host's stdin, stdin-eof and resize frames go to the
// attachment's Write, CloseStdin and Resize; a Write or CloseStdin failure
// comes back as a stdin-error frame, once per distinct message (Attached
// offers them on StdinErrors), and resize failures are ignored.
//
// Next returning io.EOF (the session ended, or without Follow its output
// at attach time was sent) ends the stream with an end frame
// {"result":<Attachment.Final()>}; another error ends it with
// {"error":...} and a Detach. The host closing its end (Attached.Close),
// the host's session going away or Serve's context ending detach the
// attachment without an end frame: the session goes on. The guest calls
// exactly one of Final and Detach per attachment.
package agentmux
