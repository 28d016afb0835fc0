// Package agentmux is banger's host↔agent protocol v2: a yamux session
// over the agent channel, started by an upgrade from the v1 line protocol,
// with one stream per request (exec, file transfer, health).
//
// It owns both ends: the host side (Upgrade, Session and its calls) and the
// guest side (Guest.Serve), and it is transport-only: what put, get and
// health do inside the guest is decided by a Handler that banger-agent
// supplies. Exec is generic (os/exec, and creack/pty for a terminal), so
// the guest side implements it here.
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
// # Streams
//
// Each request opens one yamux stream. The host writes one JSON header
// line naming the request:
//
//	{"type":"exec","exec":{"argv":[...],"env":[...],"cwd":"...","tty":true,"rows":24,"cols":80}}
//	{"type":"put","path":"/root/repo"}
//	{"type":"get","path":"/root/repo"}
//	{"type":"health"}
//
// The guest answers with one JSON reply line: {} to go ahead, the result
// for health ({"health":{...}}), or {"error":{"code":"...","message":"..."}}
// when it cannot serve the request; the host returns that as an *Error.
// After an accepting reply the stream carries frames: one channel byte, a
// 4-byte big-endian payload length, the payload (at most MaxFramePayload).
//
// Exec, host to guest: stdin (data), stdin-eof (the process's stdin is
// closed; ignored in TTY mode), resize (rows, cols as two big-endian
// uint16). Guest to host: stdout, stderr (never in TTY mode: the terminal's
// bytes are stdout), then exactly one exit frame with a JSON ExitStatus,
// after which the guest closes the stream. A host that closes its end
// before the exit frame has gone away: the guest kills the process.
//
// Put: data frames then one end frame from the host; the guest hands the
// bytes to Handler.Put (a stream ending without the end frame is
// io.ErrUnexpectedEOF there) and answers with a final reply line. Get: the
// guest sends data frames from Handler.Get and one end frame whose payload
// is the final reply ({} or {"error":...}).
package agentmux
