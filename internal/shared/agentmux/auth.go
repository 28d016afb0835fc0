package agentmux

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// KeySize is the length of an agent key: the per-VM secret the host and
// the agent share (the daemon keeps it in the VM's directory, the guest
// gets it in its boot payload).
const KeySize = 32

// Line-mode message types of the handshake (see the package comment).
const (
	typeChallenge = "challenge"
	typeAuth      = "auth"
	typeUpgradeOK = "upgrade-ok"
)

// Error codes of the handshake.
const (
	// CodeUnauthenticated: the host did not prove it holds the VM's key,
	// or sent a request before authenticating.
	CodeUnauthenticated = "unauthenticated"
	// CodeNoKey: the agent has no key, so it serves nobody.
	CodeNoKey = "no_key"
)

// Handshake failures, wrapped by Upgrade's errors (test with errors.Is).
var (
	// ErrAgentTooOld: the agent does not speak the authenticated
	// handshake (it accepted the upgrade without a challenge, or knows no
	// upgrade at all). A restart of the VM boots the daemon's agent.
	ErrAgentTooOld = errors.New("the agent predates authenticated channels")
	// ErrAgentNoKey: the agent has no key (its boot payload is missing).
	ErrAgentNoKey = errors.New("the agent has no key (its boot payload is missing)")
	// ErrKeyRefused: the agent did not accept the host's proof of the key.
	ErrKeyRefused = errors.New("the agent refused the host's key")
	// ErrGuestUnproven: the agent accepted the upgrade but could not prove
	// it holds the key: it is not the agent of the VM the host booted (a
	// stale guest on a reused address, say).
	ErrGuestUnproven = errors.New("the agent could not prove it holds the VM's key")
)

// Domain separation: the host's and the guest's proofs are MACs of the
// same nonce and challenge under different labels, so one is never valid
// as the other.
const (
	hostLabel  = "banger agent channel v2: host proof\x00"
	guestLabel = "banger agent channel v2: guest proof\x00"
)

// randomSize is the length of a nonce and of a challenge.
const randomSize = 32

// maxIDLen bounds the request ID the guest echoes.
const maxIDLen = 64

// proof is HMAC-SHA256(key, label || nonce || challenge). nonce and
// challenge have a fixed size, so the concatenation is unambiguous.
func proof(key []byte, label string, nonce, challenge []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(nonce)
	m.Write(challenge)
	return m.Sum(nil)
}

// verifyProof compares a hex proof with the expected one in constant time.
func verifyProof(key []byte, label string, nonce, challenge []byte, got string) bool {
	b, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	return hmac.Equal(b, proof(key, label, nonce, challenge))
}

// random returns n random bytes.
func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return b
}

// decodeRandom decodes a nonce or challenge: randomSize bytes in hex.
func decodeRandom(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	return b, err == nil && len(b) == randomSize
}

// keyProblem says why a guest key cannot authenticate anyone, or "".
func keyProblem(key []byte) string {
	switch {
	case len(key) == 0:
		return "the agent has no key (its boot payload is missing): restart the VM with `banger vm restart`"
	case len(key) != KeySize:
		return fmt.Sprintf("the agent's key is %d bytes, want %d (a broken boot payload): restart the VM with `banger vm restart`", len(key), KeySize)
	}
	return ""
}

// handshake runs the host's side of the upgrade on rw, whose lines lr
// reads, until the guest has proved the key; the caller starts yamux.
func (c Config) handshake(w io.Writer, lr *lineReader, key []byte) error {
	req := upgradeMsg{ID: newID(), Type: TypeUpgrade, Protocol: Protocol, Nonce: hex.EncodeToString(random(randomSize))}
	nonce, _ := hex.DecodeString(req.Nonce)
	if err := writeLine(w, req); err != nil {
		return fmt.Errorf("agentmux: sending the upgrade request: %w", err)
	}
	var challenge []byte // set once the guest's challenge came and we answered it
	for {
		line, err := lr.next()
		if err != nil {
			var le *LimitError
			switch {
			case errors.As(err, &le):
				return err
			case errors.Is(err, io.EOF):
				return fmt.Errorf("agentmux: the agent channel closed before the upgrade completed: %w", err)
			}
			return fmt.Errorf("agentmux: reading the upgrade reply: %w", err)
		}
		var rep upgradeMsg
		if !decodeLine(line, &rep) || rep.ID != req.ID {
			continue // garbage, a stale reply, an earlier session's frames
		}
		if rep.Error != nil {
			switch rep.Error.Code {
			case agentproto.CodeUnknownType:
				return fmt.Errorf("agentmux: %w: it knows no upgrade (agent said: %s)", ErrAgentTooOld, rep.Error.Message)
			case CodeNoKey:
				return fmt.Errorf("agentmux: %w (agent said: %s)", ErrAgentNoKey, rep.Error.Message)
			case CodeUnauthenticated:
				return fmt.Errorf("agentmux: %w (agent said: %s): the key in the VM's directory is not the one it booted with; restart the VM", ErrKeyRefused, rep.Error.Message)
			}
			return fmt.Errorf("agentmux: the agent refused the upgrade: %w", &Error{Code: rep.Error.Code, Message: rep.Error.Message})
		}
		switch {
		case challenge == nil && rep.Type == TypeUpgrade && rep.Nonce == req.Nonce:
			// A protocol 2 agent from before authentication switched
			// to yamux at once. The caller closes rw.
			return fmt.Errorf("agentmux: %w: it accepted the upgrade without a challenge", ErrAgentTooOld)
		case challenge == nil && rep.Type == typeChallenge && rep.Nonce == req.Nonce:
			ch, ok := decodeRandom(rep.Challenge)
			if !ok {
				return fmt.Errorf("agentmux: the agent's challenge is not %d bytes in hex", randomSize)
			}
			if rep.Protocol != Protocol {
				return fmt.Errorf("agentmux: the agent offered protocol %d, want %d: restart the VM to give it this banger's agent", rep.Protocol, Protocol)
			}
			challenge = ch
			auth := upgradeMsg{ID: req.ID, Type: typeAuth, MAC: hex.EncodeToString(proof(key, hostLabel, nonce, challenge))}
			if err := writeLine(w, auth); err != nil {
				return fmt.Errorf("agentmux: sending the authentication: %w", err)
			}
		case challenge != nil && rep.Type == typeUpgradeOK:
			if !verifyProof(key, guestLabel, nonce, challenge, rep.Proof) {
				return fmt.Errorf("agentmux: %w", ErrGuestUnproven)
			}
			return nil
		}
	}
}

// pendingAuth is a challenge the guest sent and awaits the answer to.
type pendingAuth struct {
	id               string
	nonce, challenge []byte
}

// authFailDelay is how long the guest waits after a failed
// authentication before it reads the next line.
func (g *Guest) authFailDelay() time.Duration {
	if g.AuthFailDelay > 0 {
		return g.AuthFailDelay
	}
	return time.Second
}

// lineMode answers one line-mode message: an upgrade with a challenge,
// an auth with upgrade-ok when it proves the key (upgraded: the caller
// then runs a session) or a refusal, anything else with a refusal.
func (g *Guest) lineMode(ctx context.Context, w io.Writer, m upgradeMsg, pending **pendingAuth) (upgraded bool, err error) {
	refuse := func(code, msg string) error {
		return writeLine(w, upgradeMsg{ID: m.ID, Type: m.Type, Error: &agentproto.Error{Code: code, Message: msg}})
	}
	key := g.key()
	problem := keyProblem(key)
	switch m.Type {
	case TypeUpgrade:
		*pending = nil
		if problem != "" {
			return false, refuse(CodeNoKey, problem)
		}
		nonce, ok := decodeRandom(m.Nonce)
		if !ok {
			return false, refuse(CodeBadRequest, fmt.Sprintf("the upgrade needs a nonce of %d random bytes in hex: update banger on the host", randomSize))
		}
		p := &pendingAuth{id: m.ID, nonce: nonce, challenge: random(randomSize)}
		*pending = p
		return false, writeLine(w, upgradeMsg{ID: m.ID, Type: typeChallenge, Protocol: Protocol, Nonce: m.Nonce, Challenge: hex.EncodeToString(p.challenge)})
	case typeAuth:
		p := *pending
		*pending = nil // one answer per challenge: a replay finds none
		if problem != "" {
			return false, refuse(CodeNoKey, problem)
		}
		if p == nil || p.id != m.ID || !verifyProof(key, hostLabel, p.nonce, p.challenge, m.MAC) {
			g.log().Warn("agent channel: a peer failed to authenticate")
			err := refuse(CodeUnauthenticated, "authentication failed: this agent serves only the host that booted its VM")
			sleepCtx(ctx, g.authFailDelay())
			return false, err
		}
		return true, writeLine(w, upgradeMsg{ID: m.ID, Type: typeUpgradeOK, Protocol: Protocol, Proof: hex.EncodeToString(proof(key, guestLabel, p.nonce, p.challenge))})
	}
	if problem != "" {
		return false, refuse(CodeNoKey, problem)
	}
	return false, refuse(CodeUnauthenticated, "this agent serves only authenticated protocol 2 sessions (upgrade first): update banger on the host")
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
