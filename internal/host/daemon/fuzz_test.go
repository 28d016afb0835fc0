package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
)

// fuzzEndpoint is one endpoint whose JSON body FuzzRequestBody sends to a
// real daemon that has no image and no VM, so no body can start anything:
// each answer is the daemon's decoding and validation alone.
type fuzzEndpoint struct {
	method, path string
	header       map[string]string
	body         func() any // a new request value of the endpoint's type
}

var fuzzEndpoints = []fuzzEndpoint{
	{"POST", "/v1/vms", nil, func() any { return new(api.CreateVMRequest) }},
	{"POST", "/v1/images/register", nil, func() any { return new(api.RegisterImageRequest) }},
	{"POST", "/v1/images/build", nil, func() any { return new(api.BuildImageRequest) }},
	{"POST", "/v1/vms/nope/exec?wait=true", nil, func() any { return new(api.ExecRequest) }},
	{"POST", "/v1/vms/nope/exec", upgrade, func() any { return new(api.ExecRequest) }},
	{"POST", "/v1/vms/nope/sessions", nil, func() any { return new(api.StartSessionRequest) }},
	{"POST", "/v1/vms/nope/sessions/s1/signal", nil, func() any { return new(api.SignalSessionRequest) }},
}

// strictDecode is the daemon's documented body rule, applied here with
// encoding/json directly: an empty body is the zero value, else exactly
// one JSON object of known fields, at most 1 MiB.
func strictDecode(body []byte, v any) bool {
	if len(body) == 0 {
		return true
	}
	if len(body) > 1<<20 {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// jsonFields are the JSON names of a request type's fields.
func jsonFields(v any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}

var (
	fuzzDaemonOnce sync.Once
	fuzzDaemon     *daemontest.Daemon
)

// FuzzRequestBody: every body the daemon decodes, sent to a real daemon
// over its socket. Every refusal is an API error body whose code matches
// the HTTP status, never internal; a body that is not one JSON object of
// the request's fields is refused as invalid_argument ("bad request
// body"), and one that is, is not; a field error names a JSON field of
// the request; and a body the daemon decodes gets the same answer as its
// canonical re-encoding (what the daemon read is what was meant).
func FuzzRequestBody(f *testing.F) {
	seeds := []string{
		"", "{}", `{"name":"dev","vcpus":2,"memory_mib":1024,"disk_bytes":8589934592,"hypervisor":"qemu"}`,
		`{"name":"Dev_1"}`, `{"vcpus":"two"}`, `{"nmae":"dev"}`, `{"name":"a"}{"name":"b"}`, `{"name":"a"} x`,
		`{"name":"img","kernel":"/nope/vmlinuz","rootfs":"/nope/rootfs.ext4"}`,
		`{"from":"nope","name":"x","packages":["git","-o=evil"],"script":"echo"}`,
		`{"argv":["true"],"env":["A=1","=x"],"tty":true,"rows":70000}`,
		`{"signal":"KILL"}`, `[1,2]`, `null`, `{"disk_bytes":1.5}`, "\xff", `{"name":"\u0000\u001b[31m"}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i%len(fuzzEndpoints)), []byte(s))
	}
	fuzzDaemonOnce.Do(func() { fuzzDaemon = daemontest.Start(f, daemontest.Options{}) })
	hc := rawClient(fuzzDaemon)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ep := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		a := send(t, hc, ep.method, ep.path, string(body), ep.header)
		if a.err == nil {
			t.Fatalf("%s %s %q was accepted (%d) by a daemon with no image and no VM", ep.method, ep.path, body, a.status)
		}
		e := a.err
		if a.status != e.Code.HTTPStatus() {
			t.Fatalf("%s %s %q: status %d with code %s (%d)", ep.method, ep.path, body, a.status, e.Code, e.Code.HTTPStatus())
		}
		if e.Code == api.CodeInternal || e.Message == "" {
			t.Fatalf("%s %s %q: %s %q", ep.method, ep.path, body, e.Code, e.Message)
		}
		v := ep.body()
		decoded := strictDecode(body, v)
		badBody := e.Code == api.CodeInvalidArgument && strings.HasPrefix(e.Message, "bad request body")
		if decoded == badBody {
			t.Fatalf("%s %s %q: decodes=%v, but the daemon answered %s %q", ep.method, ep.path, body, decoded, e.Code, e.Message)
		}
		if e.Field != "" && !jsonFields(v)[e.Field] {
			t.Fatalf("%s %s %q: the error names field %q, which %T does not have", ep.method, ep.path, body, e.Field, v)
		}
		if !decoded {
			return
		}
		canon, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", v, err)
		}
		b := send(t, hc, ep.method, ep.path, string(canon), ep.header)
		if b.err == nil || b.status != a.status || b.err.Code != e.Code || b.err.Field != e.Field {
			t.Fatalf("%s %s: %q answered %d %s (field %q) but its re-encoding %s answered %d %+v", ep.method, ep.path, body, a.status, e.Code, e.Field, canon, b.status, b.err)
		}
	})
}
