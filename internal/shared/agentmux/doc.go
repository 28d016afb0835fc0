// Package agentmux is banger's host↔agent protocol v2: a yamux session
// over the agent channel, started by an authenticated upgrade in line
// mode, with one stream per request (exec, file transfer, health, call,
// attach).
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
// The agent channel starts in line mode: one JSON message per line, each
// starting with "id" (the shape of protocol 1, internal/shared/agentproto, which
// survives only as this preamble). Every VM has an agent key, KeySize
// random bytes the daemon writes into the VM's 0700 directory and hands
// the guest in its boot payload (internal/shared/bootpayload); it never crosses
// the channel. The upgrade is a challenge-response in which both ends
// prove they hold the key:
//
//	host  {"id":I,"type":"upgrade","protocol":2,"nonce":N}
//	guest {"id":I,"type":"challenge","protocol":2,"nonce":N,"challenge":C}
//	host  {"id":I,"type":"auth","mac":HMAC-SHA256(key, "banger agent channel v2: host proof\x00" || N || C)}
//	guest {"id":I,"type":"upgrade-ok","protocol":2,"proof":HMAC-SHA256(key, "banger agent channel v2: guest proof\x00" || N || C)}
//
// N and C are 32 random bytes in hex (the MACs are over the raw bytes),
// I is the host's random request ID. The guest checks the host's MAC in
// constant time (hmac.Equal) against the one challenge it has
// outstanding, which it forgets at the first answer, right or wrong: a
// recorded exchange cannot be replayed, since every upgrade gets a fresh
// C. A wrong MAC gets {"id":I,"type":"auth","error":{"code":
// "unauthenticated",...}}, and the guest pauses (Guest.AuthFailDelay)
// before it reads on. The host checks the guest's proof, so it knows it
// reached the agent of the VM it booted and not a stale guest on a
// reused address. From the byte after the upgrade-ok line both ends run
// yamux: the host as the client, the guest as the server.
//
// Before that, the guest serves nothing: every other message with an
// "id" and a "type" (a protocol 1 request, a stream header) is answered
// with the error code "unauthenticated", and anything else is ignored. A
// guest without a key (Guest.Key empty: the boot payload is missing)
// answers every message with the code "no_key" and serves no one.
//
// The host reports an agent that does not speak this handshake — one
// that accepts the upgrade at once ({"type":"upgrade"} without a
// challenge, the protocol 2 agents before authentication) or knows no
// upgrade (protocol 1's unknown_type) — as ErrAgentTooOld, a keyless one
// as ErrAgentNoKey, a refusal of its MAC as ErrKeyRefused and a wrong
// guest proof as ErrGuestUnproven. Because a virtio-serial port keeps
// bytes queued across host connections, the host skips every line that
// is not a reply with its own ID (garbage, replies meant for an earlier
// connection, yamux frames an earlier session left behind), and both ends
// start their lines with a newline.
//
// # Limits
//
// The guest is untrusted, so the host bounds everything it reads from it
// (Config; the defaults are DefaultMaxLine and so on): a line-mode line
// or a stream's reply line is at most 64 KiB, a call's reply line (its
// whole result) at most 1 MiB, a frame's payload at most MaxFramePayload
// (checked before allocating), and an upgrade reads at most 4 MiB in line
// mode (longer lines are skipped as stale) and lasts at most 30s. Each
// reply line must come within 30s (ErrTimeout), and a put's final reply
// within 30s of its end frame; streams then run as long as their work
// does (a command, a tar stream, an attachment), one frame in memory at a
// time. A guest that sends
// more than a bound gets a *LimitError ("VM dev sent a reply line over
// 64 KiB: closing the agent channel") and its session is closed; the
// next request connects again. Session.HostKeys bounds the host keys (16
// keys of at most 16 KiB). Only the host opens streams: a guest that
// opens one, or leaves one of the host's unacknowledged for the reply
// timeout, has its session closed too.
//
// # Resync
//
// The guest must survive a host that disappears mid-session and a new host
// connection that starts over on the same byte stream. Guest.Serve owns the
// stream: it reads lines and runs the handshake. When the yamux session
// fails — most often because a new host connection writes line-mode
// messages, which are not valid yamux frames — Serve goes back to line
// mode. yamux buffers what it reads, so Serve records the last bytes the
// session read and replays them to the line reader from the first
// "\n{\"id\":" on: the new host's upgrade that broke the session is not
// lost. A host that gets no answer (a guest that has not noticed yet, or
// one still booting) retries with a new upgrade on the same channel
// (Upgrade with a short timeout per attempt); the guest answers each with
// a fresh challenge, and the host skips the stale challenges to its
// earlier attempts.
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
//	{"type":"dial","port":4096}
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
// Dial (Session.Dial): the guest connects to the port on its loopback
// (127.0.0.1, then ::1) and, after its accepting reply, the stream
// carries the TCP connection's bytes unframed, relayed and never parsed;
// a FIN on the stream is a half-close of the socket, each way. Nothing
// listening is CodeDialRefused, the agent's bound on relayed dials
// (Guest.MaxDials) CodeDialBusy; an agent that predates dial answers
// CodeUnknownType, which the host reports as ErrDialUnsupported.
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
