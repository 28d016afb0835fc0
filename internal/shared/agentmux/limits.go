package agentmux

import (
	"errors"
	"fmt"
	"time"
)

// The host's defaults for what it accepts from a guest (see Config).
const (
	// DefaultMaxLine bounds a line-mode line (the handshake) and a
	// stream's reply line.
	DefaultMaxLine = 64 << 10
	// DefaultMaxCallReply bounds a call's reply line, which carries the
	// whole result (a session list, say).
	DefaultMaxCallReply = 1 << 20
	// DefaultMaxUpgradeBytes bounds what the host reads in line mode
	// during one upgrade (skipped stale lines included).
	DefaultMaxUpgradeBytes = 4 << 20
	// DefaultUpgradeTimeout bounds one upgrade, handshake included.
	DefaultUpgradeTimeout = 30 * time.Second
	// DefaultReplyTimeout bounds the wait for a stream's reply line:
	// the whole of health and call, and the accepting reply of exec,
	// put, get and attach (their streams then run as long as they run).
	DefaultReplyTimeout = 30 * time.Second
	// maxStdinError bounds one stdin-error message an Attached keeps.
	maxStdinError = 4 << 10
)

// Config is how the host end treats its guest: how errors name it and the
// bounds on what it accepts. The zero value uses the defaults above.
type Config struct {
	// Peer names the guest in errors, e.g. "VM dev"; "the guest" when "".
	Peer string
	// UpgradeTimeout bounds Upgrade (besides its ctx).
	UpgradeTimeout time.Duration
	// ReplyTimeout bounds the wait for each reply line (besides ctx).
	ReplyTimeout time.Duration
	// MaxLine bounds a handshake line and a reply line; MaxCallReply a
	// call's reply line. Longer ones end the session.
	MaxLine, MaxCallReply int
	// MaxUpgradeBytes bounds what one upgrade reads.
	MaxUpgradeBytes int64
}

func (c Config) peer() string {
	if c.Peer != "" {
		return c.Peer
	}
	return "the guest"
}

func (c Config) upgradeTimeout() time.Duration {
	return orDefault(c.UpgradeTimeout, DefaultUpgradeTimeout)
}

func (c Config) replyTimeout() time.Duration {
	return orDefault(c.ReplyTimeout, DefaultReplyTimeout)
}

func (c Config) maxLine() int { return orDefault(c.MaxLine, DefaultMaxLine) }

func (c Config) maxCallReply() int { return orDefault(c.MaxCallReply, DefaultMaxCallReply) }

func (c Config) maxUpgradeBytes() int64 { return orDefault(c.MaxUpgradeBytes, DefaultMaxUpgradeBytes) }

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// ErrLimit is wrapped by every *LimitError (test with errors.Is).
var ErrLimit = errors.New("the guest exceeded a limit of the agent channel")

// ErrTimeout is wrapped by the error of a reply that did not come within
// Config.ReplyTimeout.
var ErrTimeout = errors.New("the agent did not answer in time")

// LimitError is a guest that sent more than the host accepts. The host
// closes the agent channel when it meets one; the next request connects
// again.
type LimitError struct {
	Peer  string // "VM dev"
	What  string // "a reply line", "a frame"; with Items, "host keys"
	Limit int64  // in bytes, or with Items a count
	Items bool
}

func (e *LimitError) Error() string {
	if e.Items {
		return fmt.Sprintf("agentmux: %s sent more than %d %s: closing the agent channel", e.Peer, e.Limit, e.What)
	}
	return fmt.Sprintf("agentmux: %s sent %s over %s: closing the agent channel", e.Peer, e.What, sizeString(e.Limit))
}

func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// sizeString is n bytes as a reader wants it: "64 KiB", "1 MiB", "100 B".
func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
