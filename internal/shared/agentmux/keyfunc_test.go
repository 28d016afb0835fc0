package agentmux

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestGuestKeyFunc changes a Guest's key while a session runs on a
// long-lived channel (a virtio-serial port): the session keeps working,
// and the next upgrade on the same channel needs the new key.
func TestGuestKeyFunc(t *testing.T) {
	var mu sync.Mutex
	key := testKey
	newKey := bytes.Repeat([]byte{'n'}, KeySize)
	g := &Guest{Handler: &fakeHandler{}, AuthFailDelay: time.Millisecond, KeyFunc: func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return key
	}}
	hostF, guestF := socketPair(t)
	serveGuest(t, g, hostF, guestF)

	link1 := &hostLink{f: hostF}
	s1, err := Upgrade(testContext(t), link1, testKey)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	key = newKey
	mu.Unlock()
	if _, err := s1.Health(testContext(t)); err != nil {
		t.Fatalf("the open session after the key changed: %v", err)
	}
	link1.Close()

	if _, err := Upgrade(testContext(t), &hostLink{f: hostF}, testKey); !errors.Is(err, ErrKeyRefused) {
		t.Fatalf("upgrade with the old key: %v, want ErrKeyRefused", err)
	}
	s2, err := Upgrade(testContext(t), &hostLink{f: hostF}, newKey)
	if err != nil {
		t.Fatalf("upgrade with the new key on the same channel: %v", err)
	}
	defer s2.Close()
	if _, err := s2.Health(testContext(t)); err != nil {
		t.Fatal(err)
	}
}
