package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// Lifetimes of the web UI's credentials.
const (
	// TokenTTL is how long a login token stays valid if it is not used.
	TokenTTL = 5 * time.Minute
	// SessionIdle ends a browser session that made no request for this
	// long.
	SessionIdle = 12 * time.Hour
	// SessionMax ends a browser session this long after its login,
	// however busy it is.
	SessionMax = 7 * 24 * time.Hour
)

// Bounds of the credential tables: past them the oldest entry goes. Only
// the owner mints tokens (over the daemon's socket), so these only keep a
// forgetful script from growing the tables without end.
const (
	maxTokens   = 64
	maxSessions = 64
)

// secretSize is the number of random bytes in a token or a cookie.
const secretSize = 32

// auth holds the one-time login tokens and the browser sessions. Both are
// kept by the SHA-256 of their secret, never by the secret itself, so
// the tables hold nothing a memory read could replay.
type auth struct {
	now  func() time.Time
	base context.Context // parent of every session's context

	mu       sync.Mutex
	tokens   map[string]time.Time // hash → expiry
	sessions map[string]*session  // hash → session
}

// session is one logged-in browser. Its context ends when the session
// does (logout, revoke, the handler's Close), which ends the requests
// that run in it: event streams and terminals.
type session struct {
	created, seen time.Time
	ctx           context.Context
	cancel        context.CancelFunc
}

func newAuth(base context.Context, now func() time.Time) *auth {
	return &auth{now: now, base: base, tokens: map[string]time.Time{}, sessions: map[string]*session{}}
}

// newSecret returns secretSize random bytes, base64url without padding.
func newSecret() string {
	b := make([]byte, secretSize)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return string(sum[:])
}

// mint makes a login token, valid once until the time returned.
func (a *auth) mint() (string, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.pruneLocked(now)
	for len(a.tokens) >= maxTokens {
		oldest, at := "", time.Time{}
		for h, exp := range a.tokens {
			if oldest == "" || exp.Before(at) {
				oldest, at = h, exp
			}
		}
		delete(a.tokens, oldest)
	}
	token := newSecret()
	exp := now.Add(TokenTTL)
	a.tokens[hash(token)] = exp
	return token, exp
}

// redeem spends a token: when it is known and unexpired it is forgotten
// and a new session's cookie value is returned.
func (a *auth) redeem(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.pruneLocked(now)
	h := hash(token)
	if _, ok := a.tokens[h]; !ok {
		return "", false
	}
	delete(a.tokens, h)
	for len(a.sessions) >= maxSessions {
		oldest, at := "", time.Time{}
		for h, s := range a.sessions {
			if oldest == "" || s.created.Before(at) {
				oldest, at = h, s.created
			}
		}
		a.endLocked(oldest)
	}
	cookie := newSecret()
	ctx, cancel := context.WithCancel(a.base)
	a.sessions[hash(cookie)] = &session{created: now, seen: now, ctx: ctx, cancel: cancel}
	return cookie, true
}

// session returns the live session of a cookie value and marks it used.
func (a *auth) session(cookie string) (*session, bool) {
	if cookie == "" {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.pruneLocked(now)
	s, ok := a.sessions[hash(cookie)]
	if !ok {
		return nil, false
	}
	s.seen = now
	return s, true
}

// end ends the session of a cookie value (logout).
func (a *auth) end(cookie string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endLocked(hash(cookie))
}

// revoke ends every session and drops every unused token.
func (a *auth) revoke() (sessions, tokens int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneLocked(a.now())
	sessions, tokens = len(a.sessions), len(a.tokens)
	for h := range a.sessions {
		a.endLocked(h)
	}
	clear(a.tokens)
	return sessions, tokens
}

func (a *auth) endLocked(h string) {
	if s, ok := a.sessions[h]; ok {
		s.cancel()
		delete(a.sessions, h)
	}
}

// pruneLocked forgets expired tokens and sessions.
func (a *auth) pruneLocked(now time.Time) {
	for h, exp := range a.tokens {
		if !now.Before(exp) {
			delete(a.tokens, h)
		}
	}
	for h, s := range a.sessions {
		if !now.Before(s.seen.Add(SessionIdle)) || !now.Before(s.created.Add(SessionMax)) {
			a.endLocked(h)
		}
	}
}
