package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bangerdev/banger/api"
)

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		wire string
		back time.Duration // what decoding the wire form gives
	}{
		{"zero", 0, "0", 0},
		{"whole ms", 1500 * time.Millisecond, "1500", 1500 * time.Millisecond},
		{"sub-millisecond part is dropped", 2*time.Millisecond + 999*time.Microsecond, "2", 2 * time.Millisecond},
		{"negative", -time.Second, "-1000", -time.Second},
		{"ten minutes", 10 * time.Minute, "600000", 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(api.Duration(tt.d))
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != tt.wire {
				t.Errorf("marshal %v = %s, want %s", tt.d, raw, tt.wire)
			}
			var got api.Duration
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if got.D() != tt.back {
				t.Errorf("unmarshal %s = %v, want %v", raw, got.D(), tt.back)
			}
		})
	}
}

func TestDurationRejectsNonIntegers(t *testing.T) {
	for _, in := range []string{`"5s"`, `1.5`, `true`, `{}`} {
		t.Run(in, func(t *testing.T) {
			var d api.Duration
			err := json.Unmarshal([]byte(in), &d)
			if err == nil {
				t.Fatalf("decoding %s gave %v, want an error", in, d.D())
			}
			if want := "duration: want integer milliseconds"; !contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		})
	}
}

// TestDurationFieldNames pins the JSON field names that carry durations:
// scripts read them, and a renamed tag would silently zero the value on an
// older client.
func TestDurationFieldNames(t *testing.T) {
	raw, err := json.Marshal(api.DeepDoctorRequest{ProbeTimeout: api.Duration(20 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"probe_timeout_ms":20000}`, string(raw)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	raw, err = json.Marshal(api.DeepDoctorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{}` {
		t.Errorf("zero timeout marshals as %s, want it omitted", raw)
	}
	var st api.Stage
	if err := json.Unmarshal([]byte(`{"name":"boot","duration_ms":250}`), &st); err != nil {
		t.Fatal(err)
	}
	if st.Duration.D() != 250*time.Millisecond {
		t.Errorf("stage duration_ms 250 decoded as %v", st.Duration.D())
	}
}

// TestOperationRoundTrip: an operation with a result and an error, and
// its optional times, survives JSON unchanged (omitzero keeps unfinished
// times out of the wire form and zero on the way back).
func TestOperationRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ops := []api.Operation{
		{ID: "op-1", Kind: "vm.create", Target: "dev", State: api.OperationRunning, CurrentStage: "boot",
			Stages:    []api.Stage{{Name: "boot", StartedAt: at}},
			CreatedAt: at, UpdatedAt: at},
		{ID: "op-2", Kind: "doctor", State: api.OperationFailed,
			Stages:    []api.Stage{{Name: "probe", StartedAt: at, FinishedAt: at.Add(time.Second), Duration: api.Duration(time.Second), Detail: "no kvm"}},
			CreatedAt: at, UpdatedAt: at, FinishedAt: at.Add(time.Second),
			Result: json.RawMessage(`{"checks":[]}`),
			Error:  api.Errorf(api.CodeUnavailable, "no /dev/kvm: load kvm")},
	}
	for _, op := range ops {
		t.Run(op.ID, func(t *testing.T) {
			raw, err := json.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			if op.FinishedAt.IsZero() && contains(string(raw), "finished_at") {
				t.Errorf("unfinished operation carries finished_at: %s", raw)
			}
			var got api.Operation
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(op, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOperationStateTerminal(t *testing.T) {
	for s, want := range map[api.OperationState]bool{
		api.OperationRunning: false, api.OperationSucceeded: true, api.OperationFailed: true, api.OperationCanceled: true,
	} {
		if got := s.Terminal(); got != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, want)
		}
	}
}

func TestDoctorReportWorst(t *testing.T) {
	tests := []struct {
		name     string
		statuses []api.CheckStatus
		want     api.CheckStatus
	}{
		{"empty is ok", nil, api.CheckOK},
		{"all ok", []api.CheckStatus{api.CheckOK, api.CheckOK}, api.CheckOK},
		{"skip is worse than ok", []api.CheckStatus{api.CheckOK, api.CheckSkip}, api.CheckSkip},
		{"warn is worse than skip", []api.CheckStatus{api.CheckSkip, api.CheckWarn, api.CheckOK}, api.CheckWarn},
		{"fail is worst wherever it stands", []api.CheckStatus{api.CheckFail, api.CheckWarn, api.CheckSkip}, api.CheckFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r api.DoctorReport
			for i, s := range tt.statuses {
				r.Checks = append(r.Checks, api.Check{Name: string(rune('a' + i)), Status: s})
			}
			if got := r.Worst(); got != tt.want {
				t.Errorf("Worst() = %s, want %s", got, tt.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}
