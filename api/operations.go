package api

import (
	"encoding/json"
	"time"
)

// OperationState is where an operation is in its life.
type OperationState string

// Operation states. Running is the only non-terminal one. Canceled is an
// operation stopped on someone's request (POST /v1/operations/{id}/cancel,
// the daemon shutting down); its Error (code canceled) says who and at
// which stage, and that stage's Detail is StageCanceled.
const (
	OperationRunning   OperationState = "running"
	OperationSucceeded OperationState = "succeeded"
	OperationFailed    OperationState = "failed"
	OperationCanceled  OperationState = "canceled"
)

// StageCanceled is the Detail of the stage an operation was canceled in.
const StageCanceled = "canceled"

// Terminal reports whether the state is final.
func (s OperationState) Terminal() bool { return s != OperationRunning }

// Stage is one named step of an operation. A stage that has not finished
// has a zero FinishedAt.
type Stage struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Duration   Duration  `json:"duration_ms"`
	Detail     string    `json:"detail,omitempty"`
}

// Operation is a long-running piece of work begun by a request that
// returned at once (VM create, image bootstrap, a deep doctor run).
type Operation struct {
	ID           string          `json:"id"`
	Kind         string          `json:"kind"`
	Target       string          `json:"target,omitempty"`
	State        OperationState  `json:"state"`
	CurrentStage string          `json:"current_stage,omitempty"`
	Stages       []Stage         `json:"stages"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	FinishedAt   time.Time       `json:"finished_at,omitzero"`
	Result       json.RawMessage `json:"result,omitempty"`
	Error        *Error          `json:"error,omitempty"`
}

// EventType names what an OperationEvent reports.
type EventType string

// Event types, in the order a stream delivers them.
const (
	// EventSnapshot is the first event of every stream: the operation as it
	// stands when the client subscribed.
	EventSnapshot EventType = "snapshot"
	// EventStageStarted and EventStageFinished bracket each stage.
	EventStageStarted  EventType = "stage_started"
	EventStageFinished EventType = "stage_finished"
	// EventLog carries a progress line within the current stage.
	EventLog EventType = "log"
	// EventDone is the last event: the operation is terminal.
	EventDone EventType = "done"
)

// OperationEvent is one line of GET /v1/operations/{id}/events.
type OperationEvent struct {
	Type    EventType `json:"type"`
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage,omitempty"`
	Message string    `json:"message,omitempty"`
	// Duration is the finished stage's (stage_finished), 0 on others;
	// always present, so `jq .duration_ms` never reads null.
	Duration  Duration  `json:"duration_ms"`
	Operation Operation `json:"operation"`
}

// CancelOperationRequest is the optional body of
// POST /v1/operations/{id}/cancel. By names the front end asking ("banger
// operation cancel", "banger tui"); the daemon adds the caller's uid, and
// the operation's error then says "canceled by BY (uid N) at stage S".
type CancelOperationRequest struct {
	By string `json:"by,omitempty"`
}

// OperationList is the answer to GET /v1/operations.
type OperationList struct {
	Operations []Operation `json:"operations"`
}
