package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
)

var allCodes = []*api.Error{
	api.ErrInvalidArgument, api.ErrNotFound, api.ErrAlreadyExists, api.ErrFailedPrecondition,
	api.ErrConflict, api.ErrPermissionDenied, api.ErrUnavailable, api.ErrCanceled,
	api.ErrUnimplemented, api.ErrInternal,
}

// TestEveryCodeComesBackTyped: whatever code the daemon answers with, the
// client returns that *api.Error (message intact), matching its sentinel
// and no other, from a plain call, a tar upload and a stream upgrade.
func TestEveryCodeComesBackTyped(t *testing.T) {
	for _, sent := range allCodes {
		t.Run(string(sent.Code), func(t *testing.T) {
			msg := "vm dev: " + string(sent.Code) + ": run `banger vm list`"
			_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(sent.Code.HTTPStatus())
				json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: sent.Code, Message: msg}})
			})
			ctx := context.Background()
			calls := map[string]error{}
			_, calls["VM"] = c.VM(ctx, "dev")
			_, calls["CopyIn"] = c.CopyIn(ctx, "dev", "/tmp", strings.NewReader("tar"))
			_, calls["Exec"] = c.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"true"}}, nil, nil, nil, nil)
			_, _, calls["Attach"] = c.Attach(ctx, "dev", "s1", client.AttachOptions{})
			calls["CopyOut"] = c.CopyOut(ctx, "dev", "/etc", new(strings.Builder))
			for name, err := range calls {
				var ae *api.Error
				if !errors.As(err, &ae) {
					t.Errorf("%s: got %T %v, want *api.Error", name, err, err)
					continue
				}
				if diff := cmp.Diff(&api.Error{Code: sent.Code, Message: msg}, ae); diff != "" {
					t.Errorf("%s (-want +got):\n%s", name, diff)
				}
				for _, other := range allCodes {
					if errors.Is(err, other) != (other.Code == sent.Code) {
						t.Errorf("%s: errors.Is(%s, %s) = %v", name, sent.Code, other.Code, !(other.Code == sent.Code))
					}
				}
			}
		})
	}
}

// TestUntypedAnswerIsInternal: an answer that is not the API's error body
// (a proxy's page, a crashed handler) still comes back as an *api.Error,
// code internal, naming the request and the status, so front ends need
// no second error path.
func TestUntypedAnswerIsInternal(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"plain text", http.StatusBadGateway, "upstream went away\n"},
		{"json without code", http.StatusBadRequest, `{"error":{"message":"no code"}}`},
		{"json of another shape", http.StatusConflict, `{"detail":"x"}`},
		{"empty", http.StatusServiceUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			_, err := c.Image(context.Background(), "base")
			if !errors.Is(err, api.ErrInternal) {
				t.Fatalf("got %v, want code internal", err)
			}
			want := fmt.Sprintf("bangerd answered GET /images/base with %d %s", tt.status, http.StatusText(tt.status))
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), strings.TrimSpace(tt.body)) {
				t.Errorf("message %q should contain %q and the body %q", err, want, tt.body)
			}
		})
	}
}

// TestUndecodableSuccess: a 200 whose body is not the expected JSON is an
// error naming the request, not a zero value.
func TestUndecodableSuccess(t *testing.T) {
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"vms": 7}`))
	})
	_, err := c.VMs(context.Background())
	if err == nil || !strings.Contains(err.Error(), "decoding GET /vms response") {
		t.Fatalf("got %v, want a decoding error naming GET /vms", err)
	}
}

// TestFieldErrorsComeBackWhole: a field error keeps its Field and Allowed
// through the client — from a plain call, a stream upgrade and a tar
// upload, and as the error of a failed operation a watch returns — so a
// front end can show it beside the field it names.
func TestFieldErrorsComeBackWhole(t *testing.T) {
	sent := api.FieldErrorf("memory_mib", "256MiB..256GiB", "memory_mib 64MiB is out of range: use 256MiB..256GiB")
	_, c := startFake(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			// An operation that failed on the same field.
			op := api.Operation{ID: "op-1", Kind: "vm.create", State: api.OperationFailed, Error: sent}
			json.NewEncoder(w).Encode(api.OperationEvent{Type: api.EventDone, Operation: op})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(sent.Code.HTTPStatus())
		json.NewEncoder(w).Encode(api.ErrorBody{Error: sent})
	})
	ctx := context.Background()
	calls := map[string]error{}
	_, calls["BeginCreateVM"] = c.BeginCreateVM(ctx, api.CreateVMRequest{MemoryMiB: 64})
	_, calls["Exec"] = c.Exec(ctx, "dev", api.ExecRequest{Argv: []string{"true"}}, nil, nil, nil, nil)
	_, calls["CopyIn"] = c.CopyIn(ctx, "dev", "/tmp", strings.NewReader("tar"))
	for name, err := range calls {
		var ae *api.Error
		if !errors.As(err, &ae) {
			t.Errorf("%s: got %T %v, want *api.Error", name, err, err)
			continue
		}
		if diff := cmp.Diff(sent, ae); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	op, err := c.WatchOperation(ctx, "op-1", func(api.OperationEvent) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sent, op.Error); diff != "" {
		t.Errorf("the failed operation's error (-want +got):\n%s", diff)
	}
}
