package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bangerdev/banger/api"
)

// decodeTypes are the request bodies the handlers decode with decodeBody,
// by handler.
var decodeTypes = []func() any{
	func() any { return new(api.CreateVMRequest) },        // createVM
	func() any { return new(api.RegisterImageRequest) },   // registerImage
	func() any { return new(api.BootstrapImageRequest) },  // bootstrapImage
	func() any { return new(api.BuildImageRequest) },      // buildImage
	func() any { return new(api.ExecRequest) },            // execVM
	func() any { return new(api.StartSessionRequest) },    // startSession
	func() any { return new(api.SignalSessionRequest) },   // signalSession
	func() any { return new(api.ShutdownRequest) },        // postShutdown
	func() any { return new(api.DeepDoctorRequest) },      // postDeepDoctor
	func() any { return new(api.WebLoginRequest) },        // postWebLogin
	func() any { return new(api.CancelOperationRequest) }, // cancelOperation
}

// FuzzDecodeBody: decodeBody, for every request type a handler decodes,
// including those FuzzRequestBody cannot send to a live daemon
// (bootstrap, shutdown, deep doctor and web login start something when
// accepted). A refusal is an invalid_argument *api.Error that crosses the
// wire (writeError, then the client's decoding) with its code and message
// intact; an accepted body re-encodes to a body that decodes to the same
// value.
func FuzzDecodeBody(f *testing.F) {
	for i, s := range []string{
		"", "{}", `{"name":"dev","vcpus":2}`, `{"name":"dev","link":true,"kernel":"/boot/vmlinuz"}`,
		`{"distro":"debian","suite":"bookworm","mirror":"http://deb.debian.org/debian"}`,
		`{"from":"base","presets":["agents"],"script":"#!/bin/sh\n"}`, `{"argv":["sh","-c","echo"],"rows":24}`,
		`{"argv":[]}`, `{"signal":"TERM"}`, `{"reason":"test"}`, `{"probe_timeout_ms":-1}`, `{"listen":"127.0.0.1:0"}`, `{"by":"banger operation cancel"}`,
		`{"from":"base","presets":[]}`, `{"probe_timeout_ms":1e400}`, `{"vcpus":9223372036854775808}`, `{"name":"a"} {"name":"b"}`, `{"name":"\ud800"}`,
	} {
		f.Add(uint8(i%len(decodeTypes)), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		newV := decodeTypes[int(which)%len(decodeTypes)]
		v := newV()
		err := decodeBody(httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body)), v)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Code != api.CodeInvalidArgument {
				t.Fatalf("decodeBody(%q) = %T %v; want an invalid_argument *api.Error", body, err, err)
			}
			w := httptest.NewRecorder()
			writeError(w, err)
			var eb api.ErrorBody
			if jerr := json.Unmarshal(w.Body.Bytes(), &eb); jerr != nil || eb.Error == nil {
				t.Fatalf("the error answer %q is not an API error body: %v", w.Body.Bytes(), jerr)
			}
			if eb.Error.Code != e.Code || eb.Error.Message != e.Message || w.Code != e.Code.HTTPStatus() {
				t.Fatalf("the error crossed the wire as %d %+v; want %d %+v", w.Code, eb.Error, e.Code.HTTPStatus(), e)
			}
			return
		}
		canon, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", v, err)
		}
		again := newV()
		if err := decodeBody(httptest.NewRequest("POST", "/v1/x", bytes.NewReader(canon)), again); err != nil {
			t.Fatalf("the re-encoding %s of the accepted %q is refused: %v", canon, body, err)
		}
		// An empty list and an absent one mean the same to every handler.
		if diff := cmp.Diff(v, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%q decodes, re-encodes as %s, and decodes differently (-first +second):\n%s", body, canon, diff)
		}
	})
}
