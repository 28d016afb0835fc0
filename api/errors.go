package api

import (
	"context"
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error class. Codes never change meaning;
// scripts may switch on them.
type Code string

// The error codes the API returns.
const (
	CodeInvalidArgument    Code = "invalid_argument"
	CodeNotFound           Code = "not_found"
	CodeAlreadyExists      Code = "already_exists"
	CodeFailedPrecondition Code = "failed_precondition"
	CodeConflict           Code = "conflict"
	CodePermissionDenied   Code = "permission_denied"
	CodeUnavailable        Code = "unavailable"
	CodeCanceled           Code = "canceled"
	CodeUnimplemented      Code = "unimplemented"
	CodeInternal           Code = "internal"
	CodeUnauthenticated    Code = "unauthenticated" // no valid credential (the web UI's session cookie), where permission_denied is a known caller refused
)

// Sentinels for errors.Is. An *Error matches a sentinel when the codes are
// equal, so errors.Is(err, api.ErrNotFound) holds on both sides of the
// socket.
var (
	ErrInvalidArgument    = &Error{Code: CodeInvalidArgument}
	ErrNotFound           = &Error{Code: CodeNotFound}
	ErrAlreadyExists      = &Error{Code: CodeAlreadyExists}
	ErrFailedPrecondition = &Error{Code: CodeFailedPrecondition}
	ErrConflict           = &Error{Code: CodeConflict}
	ErrPermissionDenied   = &Error{Code: CodePermissionDenied}
	ErrUnauthenticated    = &Error{Code: CodeUnauthenticated}
	ErrUnavailable        = &Error{Code: CodeUnavailable}
	ErrCanceled           = &Error{Code: CodeCanceled}
	ErrUnimplemented      = &Error{Code: CodeUnimplemented}
	ErrInternal           = &Error{Code: CodeInternal}
)

// Error is the error body every failed request returns, and the Go error the
// client hands back. Message is written for the user: it says what went
// wrong and what to do next.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Field names the request field at fault by its JSON name ("vcpus",
	// "memory_mib"), when one is; a front end shows the error next to
	// that field (the CLI maps it to its flag). For a query parameter it
	// is the parameter's name ("force" of DELETE /v1/images/{name},
	// "since", "path", "dir"). The message uses that name, before any
	// other use of the same word, wherever it means the field, so a front
	// end may put its own label in its place.
	Field string `json:"field,omitempty"`
	// Allowed says what Field accepts, for a form to show: a range
	// ("1..16", "128MiB..64GiB") or the values ("qemu, firecracker").
	Allowed string `json:"allowed,omitempty"`
}

// ErrorBody is the JSON envelope of a failed response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an invalid-argument *Error about one request field:
// field is its JSON name, allowed what it accepts ("" if nothing simpler
// than the message can say it). The message must not name a CLI flag.
func FieldErrorf(field, allowed, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...), Field: field, Allowed: allowed}
}

// FromError converts any error into the wire form. The code is taken from
// the first *Error in the chain (so wrapping keeps it); the message is the
// full text of err, which includes the context added while wrapping.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		return &Error{Code: e.Code, Message: err.Error(), Field: e.Field, Allowed: e.Allowed}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeCanceled, Message: err.Error()}
	default:
		return &Error{Code: CodeInternal, Message: err.Error()}
	}
}

// HTTPStatus maps a code to the HTTP status the daemon answers with.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInvalidArgument:
		return 400
	case CodeUnauthenticated:
		return 401
	case CodePermissionDenied:
		return 403
	case CodeNotFound:
		return 404
	case CodeAlreadyExists, CodeConflict:
		return 409
	case CodeFailedPrecondition:
		return 412
	case CodeCanceled:
		return 499
	case CodeUnimplemented:
		return 501
	case CodeUnavailable:
		return 503
	default:
		return 500
	}
}
