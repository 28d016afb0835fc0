package api

import "time"

// EventKind names what a daemon-wide Event is about.
type EventKind string

// Event kinds of GET /v1/events.
const (
	// EventHello is the first line of every stream: it carries the
	// daemon's Epoch and the Seq the stream starts after. It is not stored
	// and has no object.
	EventHello EventKind = "hello"
	// EventReset: the events since the requested Seq are no longer kept
	// (or the daemon restarted, so Seq is from another epoch). The client
	// must re-list what it shows (one GET /v1/vms, /v1/images, ...) and
	// then carry on with this stream, which continues live.
	EventReset EventKind = "reset"
	// EventVM, EventImage, EventOperation and EventSession carry the
	// object's new state in the matching field, or only its ID and
	// Name when Removed.
	EventVM        EventKind = "vm"
	EventImage     EventKind = "image"
	EventOperation EventKind = "operation"
	EventSession   EventKind = "session"
)

// Event is one line of GET /v1/events (NDJSON). Seq increases by one per
// stored event within an Epoch; a client resumes a broken stream with
// GET /v1/events?since=SEQ&epoch=EPOCH and gets every event after SEQ, or
// an EventReset first when those are gone.
type Event struct {
	Seq   uint64    `json:"seq"`
	Epoch string    `json:"epoch"`
	Time  time.Time `json:"time"`
	Kind  EventKind `json:"kind"`
	// ID and Name identify the object (for a session, its ID and name;
	// VM names the VM it runs in).
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
	VM   string `json:"vm,omitempty"`
	// Removed: the object is gone (deleted VM or image, removed session).
	Removed bool `json:"removed,omitempty"`

	// Exactly one of these is set on a change that is not a removal.
	VMState        *VM        `json:"vm_state,omitempty"`
	ImageState     *Image     `json:"image_state,omitempty"`
	OperationState *Operation `json:"operation_state,omitempty"`
	SessionState   *Session   `json:"session_state,omitempty"`
}
