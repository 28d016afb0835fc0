// Package guestsession runs and keeps long-lived commands inside a banger
// guest: pipe or TTY sessions, their bounded output buffers with offsets,
// attachers, and the on-disk state that lets a restarted host daemon find
// them again.
//
// banger-agent owns one Manager. The multiplexed host↔guest protocol turns
// `banger vm session start|list|show|logs|attach|stop|kill` into calls on
// it: Start, List, Get, Attach, Signal, Wait, WaitEarly and Remove.
//
// # Launch
//
// Start first runs a preflight — the working directory exists and is a
// directory, argv[0] is an executable path or resolves in the session's own
// PATH — and refuses with a *PreflightError (errors.Is ErrPreflight) whose
// Diagnostics name what is missing. A refused start creates nothing: no
// process, no state file. Otherwise the process starts in its own session
// and process group (setsid), so Signal reaches its children too: stop is
// SIGTERM, kill is SIGKILL, both sent to the group.
//
// A pipe session gets separate stdin, stdout and stderr pipes. A TTY session
// gets a pseudo-terminal of the requested size as stdin, stdout and stderr,
// which is also its controlling terminal.
//
// A process that exits within the early-exit window (one second unless
// WithEarlyExitWindow says otherwise) leaves a launch diagnostic in
// Info.Diagnostics — its exit code or signal and the first stderr bytes (up
// to 4 KiB; the first terminal bytes in TTY mode) — and, when it failed
// (non-zero code or a signal), the State "failed" rather than "exited".
// Start returns as soon as the process runs; WaitEarly lets a caller wait out
// the window to report such a failure at once.
//
// # Output, offsets and gaps
//
// A session's output is one merged stream: stdout and stderr chunks (or the
// terminal's bytes) in the order the agent read them, each chunk tagged with
// its Stream. Ordering between stdout and stderr is only as precise as two
// pipes allow. Every byte ever produced has an absolute offset in that
// stream; Info.OutputBytes is the offset the next byte will get.
//
// The agent keeps the newest bytes in a bounded ring (1 MiB unless
// WithRingSize says otherwise). Attach(ctx, id, since) replays from offset
// since (since < 0: from the oldest byte still buffered) and then follows live
// output. When since is older than the ring's oldest byte, the first Chunk has
// Stream StreamGap, the requested Offset, and Dropped bytes that are gone;
// delivery continues at the oldest byte. Attachers read the shared ring at
// their own pace: a slow attacher never blocks the process or another
// attacher — if it falls behind the ring, it gets a gap. Next returns io.EOF
// once the process has exited and every captured byte was delivered.
//
// # Stdin
//
// All attachers of a session write to the same stdin. Detaching — Detach, or
// the Attach context ending — never closes it: a session outlives any number
// of attach/detach cycles. A pipe session's stdin is closed only when an
// attacher asks for it explicitly with CloseStdin (or Stdin().Close()); the
// process then reads EOF. A TTY session has no separate stdin to close: send
// the terminal's EOF character (Ctrl-D, 0x04) instead.
//
// # What survives what
//
// Each session's metadata is a JSON file in the state dir (by default
// /run/banger/sessions, a tmpfs), rewritten atomically (temporary file and
// rename) on every state change: start, exit, attach and detach. Its output
// goes to an output log beside it, bounded to about twice the ring size.
//
//   - Host daemon restart: everything. The agent, its processes, buffers and
//     attach points keep running; the daemon rehydrates from List and can
//     attach with replay as before.
//   - Agent restart: metadata and the output captured until then. A new
//     Manager loads every state file. A session whose process is still alive
//     (same boot, same pid, same start time in /proc/PID/stat) comes back as
//     "running" with Orphaned set: it can be listed, replayed up to the
//     restart, stopped and killed, but its later output is not captured and
//     its stdin is gone — the process was the old agent's child and lost the
//     other ends of its pipes or terminal, so it usually dies of SIGPIPE or
//     SIGHUP soon after. (It survives at all only when the agent's service
//     manager leaves session processes alone on restart, e.g. systemd
//     KillMode=process.) A session whose process is gone is marked "exited"
//     with an unknown exit status and a diagnostic saying so.
//   - Guest reboot: nothing but what the state dir keeps. On tmpfs that is
//     nothing; on a persistent dir every session that was running is loaded
//     as exited, because the boot id no longer matches.
package guestsession
