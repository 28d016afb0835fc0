// Package frontend is the behaviour every banger front end (CLI, TUI, web
// UI) shares: attaching to sessions with replay cursors and detach,
// stopping sessions with escalation, following operations and the event
// feed, and vm run's sequence. Front ends only gather input and render.
package frontend
