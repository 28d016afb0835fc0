package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/host/doctor"
)

// rawClient speaks plain HTTP to the daemon's socket, so a test can send
// what the typed client never would: bad JSON, unknown fields, wrong
// methods, missing upgrade headers.
func rawClient(d *daemontest.Daemon) *http.Client {
	sock := d.Config.Paths.Socket()
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// answer is what the daemon said to one raw request.
type answer struct {
	status int
	header http.Header
	err    *api.Error // the decoded error body, nil on success
	body   []byte
}

func send(t *testing.T, hc *http.Client, method, path, body string, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://bangerd"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: raw}
	if resp.StatusCode/100 != 2 {
		var eb api.ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil {
			t.Fatalf("%s %s answered %d with a body that is not an API error: %q", method, path, resp.StatusCode, raw)
		}
		a.err = eb.Error
	}
	return a
}

var upgrade = map[string]string{"Connection": "Upgrade", "Upgrade": api.UpgradeStream}

// TestHandlerInputValidation sends malformed and misdirected requests to
// a real daemon. Each must be answered with the API's error body, the code
// a script can switch on, the status that code maps to, and a message that
// names what to fix — before anything is started or allocated.
func TestHandlerInputValidation(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	hc := rawClient(d)
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		code                     api.Code
		msg                      []string // each must appear in the message
	}{
		{"wrong method on a known path", "DELETE", "/v1/daemon", "", nil,
			api.CodeNotFound, []string{"has no endpoint DELETE /v1/daemon", "`banger daemon restart`"}},
		{"unknown path", "GET", "/v1/nothing-here", "", nil,
			api.CodeNotFound, []string{"has no endpoint GET /v1/nothing-here"}},
		{"another API version", "GET", "/v2/daemon", "", nil,
			api.CodeNotFound, []string{"has no endpoint GET /v2/daemon"}},
		{"bad json", "POST", "/v1/vms", `{"name":`, nil,
			api.CodeInvalidArgument, []string{"bad request body"}},
		{"json of the wrong type", "POST", "/v1/vms", `{"vcpus":"two"}`, nil,
			api.CodeInvalidArgument, []string{"bad request body", "vcpus"}},
		{"unknown field", "POST", "/v1/vms", `{"nmae":"dev"}`, nil,
			api.CodeInvalidArgument, []string{"bad request body", `unknown field "nmae"`}},
		{"body over 1 MiB", "POST", "/v1/vms", `{"name":"` + strings.Repeat("a", 1<<20) + `"}`, nil,
			api.CodeInvalidArgument, []string{"bad request body"}},
		{"missing vm", "GET", "/v1/vms/nope", "", nil,
			api.CodeNotFound, []string{`no vm named "nope"`, "`banger vm list`"}},
		{"stop missing vm", "POST", "/v1/vms/nope/stop", "{}", nil,
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"delete missing vm", "DELETE", "/v1/vms/nope", "", nil,
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"ssh missing vm", "GET", "/v1/vms/nope/ssh", "", nil,
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"sessions of missing vm", "GET", "/v1/vms/nope/sessions", "", nil,
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"workspace into missing vm", "PUT", "/v1/vms/nope/workspace", "tar", map[string]string{"Content-Type": api.ContentTypeTar},
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"copy out of missing vm", "GET", "/v1/vms/nope/files?path=/etc", "", nil,
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"exec without upgrade", "POST", "/v1/vms/nope/exec", `{"argv":["true"]}`, nil,
			api.CodeInvalidArgument, []string{"POST /v1/vms/nope/exec streams", `"Upgrade: banger-stream"`}},
		{"exec into missing vm", "POST", "/v1/vms/nope/exec", `{"argv":["true"]}`, upgrade,
			api.CodeNotFound, []string{`no vm named "nope"`}},
		{"exec with unknown field", "POST", "/v1/vms/nope/exec", `{"args":["true"]}`, upgrade,
			api.CodeInvalidArgument, []string{`unknown field "args"`}},
		{"attach without upgrade", "POST", "/v1/vms/nope/sessions/s1/attach", "", nil,
			api.CodeInvalidArgument, []string{"attach streams"}},
		{"attach from a bad offset", "POST", "/v1/vms/nope/sessions/s1/attach?since=soon", "", upgrade,
			api.CodeInvalidArgument, []string{`since "soon" is not an offset`, "-1 for everything buffered"}},
		{"build from a missing image", "POST", "/v1/images/build", `{"from":"nope","name":"x","packages":["git"]}`, nil,
			api.CodeNotFound, []string{`from "nope" is not an image`, "`banger image list`"}},
		{"bootstrap another distro", "POST", "/v1/images/bootstrap", `{"distro":"arch"}`, nil,
			api.CodeInvalidArgument, []string{`distro "arch" cannot be bootstrapped`, "`banger image register`"}},
		{"missing image", "GET", "/v1/images/nope", "", nil,
			api.CodeNotFound, []string{`no image named "nope"`}},
		{"deep doctor timeout too long", "POST", "/v1/doctor/deep", `{"probe_timeout_ms":600001}`, nil,
			api.CodeInvalidArgument, []string{"probe_timeout_ms 10m0.001s is out of range", "use 1ms..10m"}},
		{"deep doctor timeout as text", "POST", "/v1/doctor/deep", `{"probe_timeout_ms":"20s"}`, nil,
			api.CodeInvalidArgument, []string{"want integer milliseconds"}},
		{"unknown operation events", "GET", "/v1/operations/op-nope/events", "", nil,
			api.CodeNotFound, []string{`no operation "op-nope"`}},
		{"shutdown with an unknown field", "POST", "/v1/daemon/shutdown", `{"why":"x"}`, nil,
			api.CodeInvalidArgument, []string{`unknown field "why"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, hc, tt.method, tt.path, tt.body, tt.header)
			if a.err == nil {
				t.Fatalf("answered %d %q, want error %s", a.status, a.body, tt.code)
			}
			if a.err.Code != tt.code || a.status != tt.code.HTTPStatus() {
				t.Errorf("got %d %s (%q), want %d %s", a.status, a.err.Code, a.err.Message, tt.code.HTTPStatus(), tt.code)
			}
			for _, m := range tt.msg {
				if !strings.Contains(a.err.Message, m) {
					t.Errorf("message %q does not contain %q", a.err.Message, m)
				}
			}
			if a.header.Get(api.HeaderBuildID) == "" || a.header.Get(api.HeaderVersion) == "" {
				t.Errorf("error answer lacks the build headers: %v", a.header)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("error answer has Content-Type %q", ct)
			}
		})
	}
	// The bad shutdown request above must not have stopped the daemon.
	if _, err := d.Client.DaemonStatus(context.Background()); err != nil {
		t.Fatalf("daemon gone after the validation requests: %v", err)
	}
}

// TestDaemonStatus: GET /v1/daemon describes this process and its paths.
func TestDaemonStatus(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	st, err := d.Client.DaemonStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := api.DaemonStatus{PID: os.Getpid(), UID: os.Getuid(), Socket: d.Config.Paths.Socket(),
		StorePath: d.Config.Paths.DBFile(), LogFile: d.Config.Paths.LogFile()}
	got := api.DaemonStatus{PID: st.PID, UID: st.UID, Socket: st.Socket, StorePath: st.StorePath, LogFile: st.LogFile}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if st.BuildID == "" || st.StartedAt.IsZero() || st.Uptime < 0 {
		t.Errorf("status lacks build id, start time or uptime: %+v", st)
	}
}

// TestEmptyListsAreArrays: a fresh daemon answers its lists with [] rather
// than null, so scripts and the web UI can iterate without a nil check.
func TestEmptyListsAreArrays(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	hc := rawClient(d)
	for path, field := range map[string]string{
		"/v1/vms": "vms", "/v1/images": "images", "/v1/operations": "operations",
	} {
		t.Run(path, func(t *testing.T) {
			a := send(t, hc, "GET", path, "", nil)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(a.body, &m); err != nil {
				t.Fatalf("%s: %v (%q)", path, err, a.body)
			}
			if string(m[field]) != "[]" {
				t.Errorf("%s: %q is %s, want []", path, field, m[field])
			}
		})
	}
}

// noKVMHost is the real system except that /dev/kvm fails to open and
// QEMU's sandbox is not started, so a deep doctor run stops at its KVM
// stage without booting anything.
type noKVMHost struct{ doctor.System }

func (noKVMHost) KVMDevice() error { return errors.New("open /dev/kvm: no such file (test host)") }
func (noKVMHost) QEMUSandbox(context.Context, string) error {
	return nil
}

// TestDeepDoctorOperationFlow follows one operation from begin to end
// through the API: begin answers 202 with a running (or already finished)
// operation; its event stream starts with a snapshot, brackets stages,
// ends with done; the result decodes as a doctor report; the stored
// operation equals the streamed end state; and the probe's verdict is
// remembered by the quick doctor afterwards.
func TestDeepDoctorOperationFlow(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Host: noKVMHost{}})
	ctx := context.Background()
	op, err := d.Client.BeginDeepDoctor(ctx, api.DeepDoctorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if op.ID == "" || op.Kind != "doctor" {
		t.Fatalf("begin answered %+v, want a doctor operation with an id", op)
	}
	var events []api.OperationEvent
	final, err := d.Client.WatchOperation(ctx, op.ID, func(ev api.OperationEvent) error {
		events = append(events, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 || events[0].Type != api.EventSnapshot || events[len(events)-1].Type != api.EventDone {
		t.Fatalf("events %v: want a snapshot first and done last", eventTypes(events))
	}
	if final.State != api.OperationSucceeded || final.Error != nil {
		t.Fatalf("operation ended %s (%v), want succeeded", final.State, final.Error)
	}
	var stages []string
	for _, s := range final.Stages {
		stages = append(stages, s.Name)
		if s.FinishedAt.IsZero() {
			t.Errorf("stage %q of a finished operation has no finish time", s.Name)
		}
	}
	if diff := cmp.Diff([]string{"host checks", "kvm device", "image digests"}, stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	var rep api.DoctorReport
	if err := json.Unmarshal(final.Result, &rep); err != nil {
		t.Fatalf("result is not a doctor report: %v (%s)", err, final.Result)
	}
	kvm := checkNamed(rep, doctor.CheckKVMBoot)
	if kvm.Status != api.CheckSkip || !strings.Contains(kvm.Detail, "test host") || kvm.Fix == "" {
		t.Errorf("kvm-boot check %+v: want skip naming the device error, with a fix", kvm)
	}
	stored, err := d.Client.Operation(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The store keeps times to the millisecond; the live stream has them
	// to the nanosecond.
	if diff := cmp.Diff(final, stored, cmpopts.EquateApproxTime(time.Millisecond)); diff != "" {
		t.Errorf("stored operation differs from the streamed end state (-streamed +stored):\n%s", diff)
	}
	// A stream opened after the end replays the snapshot and done.
	var late []api.EventType
	if _, err := d.Client.WatchOperation(ctx, op.ID, func(ev api.OperationEvent) error {
		late = append(late, ev.Type)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(late) == 0 || late[len(late)-1] != api.EventDone {
		t.Errorf("late stream %v, want it to end with done", late)
	}
	list, err := d.Client.Operations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != op.ID {
		t.Errorf("operation list %+v, want just %s", list, op.ID)
	}
	// Cancelling a finished operation is accepted and changes nothing.
	if err := d.Client.CancelOperation(ctx, op.ID, "test"); err != nil {
		t.Errorf("cancel of a finished operation: %v", err)
	}
	quick, err := d.Client.Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := checkNamed(quick, doctor.CheckKVMBoot); !strings.Contains(c.Detail, "test host") {
		t.Errorf("quick doctor after the deep run: kvm-boot %+v, want the recorded probe", c)
	}
}

// TestDoctorAndVerifyAnswer: the quick doctor lists every check once,
// each non-ok one with a fix; verify answers a list.
func TestDoctorAndVerifyAnswer(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{Host: noKVMHost{}})
	ctx := context.Background()
	rep, err := d.Client.Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range rep.Checks {
		if seen[c.Name] {
			t.Errorf("check %q appears twice", c.Name)
		}
		seen[c.Name] = true
		if c.Status != api.CheckOK && c.Fix == "" {
			t.Errorf("check %q is %s without a fix: %q", c.Name, c.Status, c.Detail)
		}
	}
	for _, name := range []string{doctor.CheckKVMDevice, doctor.CheckKVMBoot, doctor.CheckImages, doctor.CheckQEMU} {
		if !seen[name] {
			t.Errorf("doctor report lacks the %q check", name)
		}
	}
	if c := checkNamed(rep, doctor.CheckKVMBoot); c.Status != api.CheckSkip {
		t.Errorf("kvm-boot before any probe is %s, want skip", c.Status)
	}
	hc := rawClient(d)
	a := send(t, hc, "GET", "/v1/verify", "", nil)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &m); err != nil || !strings.HasPrefix(string(m["leaks"]), "[") {
		t.Errorf("verify answered %q, want a leaks array", a.body)
	}
}

func checkNamed(rep api.DoctorReport, name string) api.Check {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	return api.Check{}
}

func eventTypes(evs []api.OperationEvent) []api.EventType {
	var out []api.EventType
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}
