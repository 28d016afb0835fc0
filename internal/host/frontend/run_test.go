package frontend

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/client"
	"github.com/bangerdev/banger/internal/host/daemontest"
	"github.com/bangerdev/banger/internal/shared/workspace"
)

// createDaemon answers vm create (an operation with two stages) and the
// workspace upload, recording the requests and the files uploaded.
type createDaemon struct {
	createFaults
	mu       sync.Mutex
	requests []string
	files    []string
}

// createFaults are the failures a createDaemon plays: refuse is the
// create's refusal, failOp makes the operation fail, failWorkspace
// refuses the upload.
type createFaults struct {
	refuse, failOp, failWorkspace *api.Error
}

func (d *createDaemon) record(r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, r.Method+" "+r.URL.Path)
}

func startCreateDaemon(t *testing.T, d *createDaemon) *client.Client {
	t.Helper()
	vm := api.VM{Name: "demo", IP: "10.0.0.2", State: api.VMRunning}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		d.record(r)
		if d.refuse != nil {
			writeJSON(w, d.refuse.Code.HTTPStatus(), api.ErrorBody{Error: d.refuse})
			return
		}
		writeJSON(w, http.StatusAccepted, operation(api.OperationRunning))
	})
	mux.HandleFunc("GET /v1/operations/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		d.record(r)
		running := operation(api.OperationRunning, stage("clone", 0, -1, ""))
		end := operation(api.OperationSucceeded, stage("clone", 0, 1, ""), stage("boot", 1, 2, ""))
		end.Result, _ = jsonOf(vm)
		if d.failOp != nil {
			end.State, end.Result, end.Error = api.OperationFailed, nil, d.failOp
		}
		send(w, api.OperationEvent{Type: api.EventSnapshot, Operation: running},
			api.OperationEvent{Type: api.EventStageFinished, Stage: "clone", Operation: end},
			api.OperationEvent{Type: api.EventDone, Operation: end})
	})
	mux.HandleFunc("PUT /v1/vms/{name}/workspace", func(w http.ResponseWriter, r *http.Request) {
		d.record(r)
		if d.failWorkspace != nil {
			io.Copy(io.Discard, r.Body)
			writeJSON(w, d.failWorkspace.Code.HTTPStatus(), api.ErrorBody{Error: d.failWorkspace})
			return
		}
		tr := tar.NewReader(r.Body)
		res := api.TransferResult{Path: "/root/repo"}
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			d.mu.Lock()
			d.files = append(d.files, h.Name)
			d.mu.Unlock()
			res.Files++
		}
		writeJSON(w, http.StatusOK, res)
	})
	sock := daemontest.ShortTempDir(t) + "/bangerd.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	cl := client.New(sock)
	t.Cleanup(cl.Close)
	return cl
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

// gitCheckout makes a git work tree with one committed file.
func gitCheckout(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: apt-get install git")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README"), []byte("hi\n"), 0o644)
	for _, args := range [][]string{{"init", "-q"}, {"add", "README"}, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// TestRunVM: vm run's sequence, and where it stops when a step fails.
func TestRunVM(t *testing.T) {
	notGit := t.TempDir()
	os.WriteFile(filepath.Join(notGit, "README"), []byte("hi\n"), 0o644)
	tests := []struct {
		name         string
		faults       createFaults
		checkout     string // "" : a git checkout
		mode         workspace.Mode
		wantStages   []string
		wantRequests []string
		wantErr      func(error) bool
		wantVM       string
	}{
		{"all steps", createFaults{}, "", "", []string{StageCheckCheckout, StageCreateVM, StagePrepareWorkspace},
			[]string{"POST /v1/vms", "GET /v1/operations/op-1/events", "PUT /v1/vms/demo/workspace"}, nil, "demo"},
		{"a checkout git cannot pack is refused before anything is created", createFaults{}, notGit, workspace.ModeGit,
			[]string{StageCheckCheckout}, nil, func(err error) bool { return strings.Contains(err.Error(), notGit) }, ""},
		{"full copy needs no git", createFaults{}, notGit, workspace.ModeFullCopy,
			[]string{StageCheckCheckout, StageCreateVM, StagePrepareWorkspace},
			[]string{"POST /v1/vms", "GET /v1/operations/op-1/events", "PUT /v1/vms/demo/workspace"}, nil, "demo"},
		{"a refused create", createFaults{refuse: api.FieldErrorf("vcpus", "1 to 64", "vcpus 500 is out of range")}, "", "",
			[]string{StageCheckCheckout, StageCreateVM}, []string{"POST /v1/vms"},
			func(err error) bool { var ae *api.Error; return errors.As(err, &ae) && ae.Field == "vcpus" }, ""},
		{"a failed create", createFaults{failOp: &api.Error{Code: api.CodeInternal, Message: "boot failed"}}, "", "",
			[]string{StageCheckCheckout, StageCreateVM}, []string{"POST /v1/vms", "GET /v1/operations/op-1/events"},
			func(err error) bool { return strings.Contains(err.Error(), "boot failed") }, ""},
		{"a failed copy keeps the VM", createFaults{failWorkspace: &api.Error{Code: api.CodeUnavailable, Message: "agent gone"}}, "", "",
			[]string{StageCheckCheckout, StageCreateVM, StagePrepareWorkspace},
			[]string{"POST /v1/vms", "GET /v1/operations/op-1/events", "PUT /v1/vms/demo/workspace"},
			func(err error) bool {
				var we *WorkspaceError
				return errors.As(err, &we) && we.VM.Name == "demo" && errors.Is(err, api.ErrUnavailable) &&
					strings.Contains(err.Error(), "the VM demo is running")
			}, "demo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &createDaemon{createFaults: tt.faults}
			cl := startCreateDaemon(t, d)
			checkout := tt.checkout
			if checkout == "" {
				checkout = gitCheckout(t)
			}
			var stages, events []string
			var copied []string
			req := RunRequest{Create: api.CreateVMRequest{Name: "demo"}, Checkout: checkout, Mode: tt.mode}
			v, err := RunVM(context.Background(), cl, req, Progress{
				OnStage:     func(s string) { stages = append(stages, s) },
				OnOperation: func(ev api.OperationEvent) { events = append(events, string(ev.Type)) },
				OnWorkspace: func(v api.VM, res api.TransferResult, _ time.Duration) { copied = append(copied, v.Name+":"+res.Path) },
			})
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && (err == nil || !tt.wantErr(err)) {
				t.Fatalf("RunVM: %v", err)
			}
			if v.Name != tt.wantVM {
				t.Errorf("VM %q, want %q", v.Name, tt.wantVM)
			}
			if diff := cmp.Diff(tt.wantStages, stages); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRequests, d.requests); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if diff := cmp.Diff([]string{"snapshot", "stage_finished", "done"}, events); diff != "" {
					t.Errorf("operation events (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"demo:/root/repo"}, copied); diff != "" {
					t.Errorf("OnWorkspace (-want +got):\n%s", diff)
				}
				if !contains(d.files, "README") {
					t.Errorf("uploaded %q, want the checkout's README", d.files)
				}
			}
		})
	}
}

// TestRunVMChecked: a checkout the caller checked (CheckCheckout, before
// it reached the daemon) is not checked again; here git mode on a
// directory git does not know gets as far as the copy, which refuses it.
func TestRunVMChecked(t *testing.T) {
	d := &createDaemon{}
	cl := startCreateDaemon(t, d)
	notGit := t.TempDir()
	if err := CheckCheckout(context.Background(), notGit, workspace.ModeGit); err == nil {
		t.Fatal("CheckCheckout accepted a directory outside any git work tree in git mode")
	}
	var stages []string
	v, err := RunVM(context.Background(), cl, RunRequest{Create: api.CreateVMRequest{Name: "demo"}, Checkout: notGit, Mode: workspace.ModeGit, Checked: true},
		Progress{OnStage: func(s string) { stages = append(stages, s) }})
	var we *WorkspaceError
	if !errors.As(err, &we) || v.Name != "demo" {
		t.Fatalf("RunVM = %+v, %v; want the VM and a WorkspaceError", v, err)
	}
	if diff := cmp.Diff([]string{StageCreateVM, StagePrepareWorkspace}, stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s || strings.HasSuffix(x, "/"+s) {
			return true
		}
	}
	return false
}

// TestCreateVM: the create's events reach the caller and the result is
// the VM.
func TestCreateVM(t *testing.T) {
	d := &createDaemon{}
	cl := startCreateDaemon(t, d)
	var events []string
	v, err := CreateVM(context.Background(), cl, api.CreateVMRequest{Name: "demo"}, func(ev api.OperationEvent) {
		events = append(events, string(ev.Type)+":"+ev.Operation.ID)
	})
	if err != nil || v.Name != "demo" || v.IP != "10.0.0.2" {
		t.Fatalf("CreateVM = %+v, %v", v, err)
	}
	if diff := cmp.Diff([]string{"snapshot:op-1", "stage_finished:op-1", "done:op-1"}, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestPrepareWorkspacePackError: the packer's reason is reported, not the
// upload's broken pipe.
func TestPrepareWorkspacePackError(t *testing.T) {
	cl := startCreateDaemon(t, &createDaemon{})
	_, err := PrepareWorkspace(context.Background(), cl, "demo", filepath.Join(t.TempDir(), "missing"), "", workspace.ModeFullCopy)
	if err == nil || !strings.Contains(err.Error(), "preparing the workspace of demo") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("got %v, want the packer's error about the missing directory", err)
	}
}

// A checkout the git mode cannot take is refused as a field error on
// "mode", so the CLI can say --mode and a form its mode field; the
// message names the mode, not a flag.
func TestCheckCheckoutNamesTheModeField(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	err := CheckCheckout(context.Background(), t.TempDir(), workspace.ModeGit)
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *api.Error", err)
	}
	if ae.Code != api.CodeInvalidArgument || ae.Field != "mode" || ae.Allowed != "git, full_copy" {
		t.Errorf("got %s field=%q allowed=%q", ae.Code, ae.Field, ae.Allowed)
	}
	if !strings.Contains(ae.Message, "use mode full_copy") || strings.Contains(ae.Message, "--") {
		t.Errorf("message %q", ae.Message)
	}
	if err := CheckCheckout(context.Background(), t.TempDir(), workspace.ModeFullCopy); err != nil {
		t.Errorf("full_copy of a plain directory: %v", err)
	}
}
