package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

// sentinels is every code the API defines with its sentinel and the HTTP
// status the daemon answers it with. A code added to errors.go without a
// row here fails TestEveryCodeHasASentinel.
var sentinels = []struct {
	code   api.Code
	err    *api.Error
	status int
}{
	{api.CodeInvalidArgument, api.ErrInvalidArgument, 400},
	{api.CodeNotFound, api.ErrNotFound, 404},
	{api.CodeAlreadyExists, api.ErrAlreadyExists, 409},
	{api.CodeFailedPrecondition, api.ErrFailedPrecondition, 412},
	{api.CodeConflict, api.ErrConflict, 409},
	{api.CodePermissionDenied, api.ErrPermissionDenied, 403},
	{api.CodeUnauthenticated, api.ErrUnauthenticated, 401},
	{api.CodeUnavailable, api.ErrUnavailable, 503},
	{api.CodeCanceled, api.ErrCanceled, 499},
	{api.CodeUnimplemented, api.ErrUnimplemented, 501},
	{api.CodeInternal, api.ErrInternal, 500},
}

// TestErrorJSONRoundTrip sends each code through the wire envelope and
// checks that the decoded value is the same error and matches its own
// sentinel and no other: a renamed JSON tag, a changed code string or a
// sentinel that matched by pointer instead of by code would break the
// client's errors.Is.
func TestErrorJSONRoundTrip(t *testing.T) {
	for _, s := range sentinels {
		t.Run(string(s.code), func(t *testing.T) {
			sent := api.Errorf(s.code, "vm %q: try `banger vm list`", "dev")
			raw, err := json.Marshal(api.ErrorBody{Error: sent})
			if err != nil {
				t.Fatal(err)
			}
			wantRaw := fmt.Sprintf(`{"error":{"code":%q,"message":"vm \"dev\": try `+"`banger vm list`"+`"}}`, s.code)
			if diff := cmp.Diff(wantRaw, string(raw)); diff != "" {
				t.Errorf("wire form (-want +got):\n%s", diff)
			}
			var got api.ErrorBody
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sent, got.Error); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
			wrapped := fmt.Errorf("while testing: %w", got.Error)
			for _, other := range sentinels {
				if is := errors.Is(wrapped, other.err); is != (other.code == s.code) {
					t.Errorf("errors.Is(%s, %s) = %v", s.code, other.code, is)
				}
			}
			if got.Error.Error() != sent.Message {
				t.Errorf("Error() = %q, want the message %q", got.Error.Error(), sent.Message)
			}
		})
	}
}

func TestEveryCodeHasASentinel(t *testing.T) {
	seen := map[api.Code]bool{}
	for _, s := range sentinels {
		if seen[s.code] {
			t.Errorf("code %s listed twice", s.code)
		}
		seen[s.code] = true
		if s.err.Code != s.code {
			t.Errorf("sentinel for %s carries code %s", s.code, s.err.Code)
		}
		if got := s.code.HTTPStatus(); got != s.status {
			t.Errorf("%s.HTTPStatus() = %d, want %d", s.code, got, s.status)
		}
	}
	if got := api.Code("no_such_code").HTTPStatus(); got != 500 {
		t.Errorf("an unknown code maps to %d, want 500", got)
	}
}

func TestErrorTextWithoutMessage(t *testing.T) {
	if got := (&api.Error{Code: api.CodeNotFound}).Error(); got != "not_found" {
		t.Errorf("Error() of a bare code = %q, want the code", got)
	}
}

// TestFromError checks the conversion the daemon applies to every handler
// error: the code of the first *api.Error in the chain survives wrapping,
// the message keeps the wrapping context, cancellation becomes canceled
// and anything else internal.
func TestFromError(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want *api.Error
	}{
		{"nil", nil, nil},
		{"plain api error", api.Errorf(api.CodeConflict, "vm dev is busy"),
			&api.Error{Code: api.CodeConflict, Message: "vm dev is busy"}},
		{"wrapped api error keeps code and context",
			fmt.Errorf("starting vm dev: %w", api.Errorf(api.CodeFailedPrecondition, "image gone: rebuild it")),
			&api.Error{Code: api.CodeFailedPrecondition, Message: "starting vm dev: image gone: rebuild it"}},
		{"canceled", fmt.Errorf("booting: %w", context.Canceled),
			&api.Error{Code: api.CodeCanceled, Message: "booting: context canceled"}},
		{"deadline", fmt.Errorf("booting: %w", context.DeadlineExceeded),
			&api.Error{Code: api.CodeCanceled, Message: "booting: context deadline exceeded"}},
		{"api error beats cancellation in the chain",
			fmt.Errorf("%w: %w", api.Errorf(api.CodeNotFound, "no vm"), context.Canceled),
			&api.Error{Code: api.CodeNotFound, Message: "no vm: context canceled"}},
		{"anything else is internal", errors.New("disk full"),
			&api.Error{Code: api.CodeInternal, Message: "disk full"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, api.FromError(tt.in)); diff != "" {
				t.Errorf("FromError (-want +got):\n%s", diff)
			}
		})
	}
}

// TestErrorIsNeedsAnAPIError: an *api.Error never matches a foreign error
// value, even one whose text is the code.
func TestErrorIsNeedsAnAPIError(t *testing.T) {
	if errors.Is(api.Errorf(api.CodeNotFound, "x"), errors.New("not_found")) {
		t.Error("an *api.Error matched a plain error with the same text")
	}
}
