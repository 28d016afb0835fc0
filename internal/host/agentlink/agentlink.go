// Package agentlink keeps bangerd's connections to guest agents: one
// long-lived protocol 2 session (internal/shared/agentmux) per VM, opened on first
// use with the VM's agent key (the authenticated upgrade) and reopened
// when it breaks — including when the guest broke one of agentmux's
// limits, which closes the session.
//
// One session per VM is not only economy. A virtio-serial port serves one
// host connection at a time, so every request for a VM — health, readiness
// probes, exec, file transfer, session attach — must share the one
// connection; yamux streams make that possible. A restarted daemon simply
// connects again: the agent resyncs to the new host (see agentmux).
package agentlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentmux"
)

// Channel is an opened agent channel of one VM and what it takes to
// authenticate on it.
type Channel struct {
	Conn io.ReadWriteCloser
	// Key is the VM's agent key (agentmux.KeySize bytes): the one its
	// agent booted with.
	Key []byte
	// VM names the VM in errors, as the user knows it.
	VM string
}

// DialFunc opens the agent channel of one VM (hypervisor.Hypervisor's
// DialAgent for its handle) and reads its key.
type DialFunc func(ctx context.Context) (Channel, error)

// Pool holds the sessions, keyed by VM id. The zero value is ready to use.
type Pool struct {
	// AttemptTimeout bounds one upgrade attempt (3s when zero): an agent
	// that is still booting does not answer, and the caller retries.
	AttemptTimeout time.Duration
	// Limits bounds what each session accepts from its guest (see
	// agentmux.Config; Peer is set from Channel.VM).
	Limits agentmux.Config

	mu    sync.Mutex
	links map[string]*link
}

type link struct {
	mu   sync.Mutex // held while connecting: one connect per VM at a time
	sess *agentmux.Session
	// pending is a channel whose upgrade timed out (a booting guest): the
	// next attempt retries on it rather than dialing again, so a booting
	// VM sees one host connection, not one per attempt.
	pending *Channel
	// users counts the Gets holding this link (under Pool.mu): a link
	// left with neither session nor pending channel is forgotten when
	// its last user is done, so a VM that is gone (deleted while a
	// request raced it) leaves nothing behind.
	users int
}

// acquire returns the VM's link, counting the caller as its user.
func (p *Pool) acquire(key string) *link {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.links == nil {
		p.links = map[string]*link{}
	}
	l, ok := p.links[key]
	if !ok {
		l = &link{}
		p.links[key] = l
	}
	l.users++
	return l
}

// release ends a user's hold on l; idle says whether the user left it
// without a session or a pending channel.
func (p *Pool) release(key string, l *link, idle bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.users--
	if l.users == 0 && idle && p.links[key] == l {
		delete(p.links, key)
	}
}

// Get returns the VM's live session, connecting with dial when there is
// none or the last one ended. Callers that arrive while a connect is under
// way wait for it and share its result.
func (p *Pool) Get(ctx context.Context, key string, dial DialFunc) (*agentmux.Session, error) {
	l := p.acquire(key)
	l.mu.Lock()
	defer func() {
		idle := l.sess == nil && l.pending == nil
		l.mu.Unlock()
		p.release(key, l, idle)
	}()
	if l.sess != nil {
		select {
		case <-l.sess.Done():
			l.sess = nil
		default:
			return l.sess, nil
		}
	}
	timeout := p.AttemptTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	attempt, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := l.pending
	l.pending = nil
	if ch == nil {
		c, err := dial(attempt)
		if err != nil {
			return nil, err
		}
		ch = &c
	}
	vm := ch.VM
	if vm == "" {
		vm = key
	}
	cfg := p.Limits
	cfg.Peer = "VM " + vm
	sess, err := cfg.Upgrade(attempt, ch.Conn, ch.Key)
	if err != nil {
		_, retryable := ch.Conn.(interface{ SetDeadline(time.Time) error })
		if retryable && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// Upgrade left the channel usable: keep it for the next try.
			l.pending = ch
			return nil, fmt.Errorf("the guest agent did not answer within %s", timeout)
		}
		ch.Conn.Close()
		return nil, explain(err, vm)
	}
	l.sess = sess
	return sess, nil
}

// explain says what to do about a failed upgrade.
func explain(err error, vm string) error {
	restart := fmt.Sprintf("restart it with `banger vm restart %s`", vm)
	switch {
	case errors.Is(err, agentmux.ErrAgentTooOld):
		return fmt.Errorf("the agent in VM %s predates authenticated channels: %s (%w)", vm, restart, err)
	case errors.Is(err, agentmux.ErrAgentNoKey):
		return fmt.Errorf("the agent in VM %s has no key (its boot payload is missing): %s (%w)", vm, restart, err)
	case errors.Is(err, agentmux.ErrKeyRefused), errors.Is(err, agentmux.ErrGuestUnproven):
		return fmt.Errorf("the agent in VM %s does not hold the key the daemon gave it: %s (%w)", vm, restart, err)
	}
	return err
}

// Drop closes the VM's session, if any, and forgets it.
func (p *Pool) Drop(key string) {
	p.mu.Lock()
	l, ok := p.links[key]
	delete(p.links, key)
	p.mu.Unlock()
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sess != nil {
		l.sess.Close()
		l.sess = nil
	}
	if l.pending != nil {
		l.pending.Conn.Close()
		l.pending = nil
	}
}

// Close drops every session.
func (p *Pool) Close() {
	p.mu.Lock()
	keys := make([]string, 0, len(p.links))
	for k := range p.links {
		keys = append(keys, k)
	}
	p.mu.Unlock()
	for _, k := range keys {
		p.Drop(k)
	}
}
