package agentmux

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// callHandler serves call streams and records the params each call saw.
type callHandler struct {
	fakeHandler
	params []string
}

// echoResult is what the "echo" method answers.
type echoResult struct {
	Method string `json:"method"`
	Params string `json:"params"`
}

func (h *callHandler) Call(ctx context.Context, method string, params json.RawMessage) (any, error) {
	h.mu.Lock()
	h.params = append(h.params, string(params))
	h.mu.Unlock()
	switch method {
	case "echo":
		return echoResult{Method: method, Params: string(params)}, nil
	case "refuse":
		return nil, &Error{Code: "no_such_session", Message: "no session ghost: list them with banger vm session list"}
	case "fail":
		return nil, errors.New("disk on fire")
	case "nothing":
		return nil, nil
	case "typed-nil":
		var p *echoResult
		return p, nil
	}
	return nil, &Error{Code: CodeBadRequest, Message: "no method " + method}
}

func TestCall(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		params  any
		want    echoResult
		wantErr *Error
	}{
		{
			name:   "params and result round trip",
			method: "echo",
			params: map[string]any{"session": "web", "follow": true},
			want:   echoResult{Method: "echo", Params: `{"follow":true,"session":"web"}`},
		},
		{
			name:   "no params",
			method: "echo",
			want:   echoResult{Method: "echo"},
		},
		{
			name:   "a nil result leaves result alone",
			method: "nothing",
		},
		{
			name:   "a typed nil result leaves result alone",
			method: "typed-nil",
		},
		{
			name:    "a handler's *Error keeps its code",
			method:  "refuse",
			wantErr: &Error{Code: "no_such_session", Message: "no session ghost: list them with banger vm session list"},
		},
		{
			name:    "other errors are internal",
			method:  "fail",
			wantErr: &Error{Code: CodeInternal, Message: "calling fail: disk on fire"},
		},
		{
			name:    "a method is required",
			method:  "",
			wantErr: &Error{Code: CodeBadRequest, Message: "call needs a method"},
		},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := newSession(t, tr, &callHandler{})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var got echoResult
					err := s.Call(testContext(t), tt.method, tt.params, &got)
					if tt.wantErr != nil {
						var e *Error
						if !errors.As(err, &e) {
							t.Fatalf("Call = %v, want an *Error", err)
						}
						if diff := cmp.Diff(tt.wantErr, e); diff != "" {
							t.Errorf("error (-want +got):\n%s", diff)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("result (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// TestCallWire checks the reply line a daemon splicing streams sees.
func TestCallWire(t *testing.T) {
	s := newSession(t, transports[1], &callHandler{})
	tests := []struct {
		method string
		want   string // Reply.Result
	}{
		{"echo", `{"method":"echo","params":"{\"x\":1}"}`},
		{"nothing", ""},
		{"typed-nil", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			st, rep, err := s.Open(testContext(t), Header{Type: TypeCall, Method: tt.method, Params: json.RawMessage(`{"x":1}`)})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			if got := string(rep.Result); got != tt.want {
				t.Errorf("Result = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCallUnserved(t *testing.T) {
	tests := []struct {
		name    string
		handler Handler
	}{
		{"a handler without Caller", &fakeHandler{}},
		{"no handler", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, transports[0], tt.handler)
			err := s.Call(testContext(t), "session.list", nil, nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Call = %v, want an *Error", err)
			}
			want := &Error{Code: CodeUnknownType, Message: "this agent does not serve call: update banger-agent in the image"}
			if diff := cmp.Diff(want, e); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
