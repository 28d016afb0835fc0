package api

// CheckStatus is the verdict of one doctor check.
type CheckStatus string

// Check statuses. Skip means the check could not run here; its Detail says
// why. A skipped check is never counted as passed.
const (
	CheckOK   CheckStatus = "ok"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
	CheckSkip CheckStatus = "skip"
)

// Check is one line of a doctor report.
type Check struct {
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail"`
	// Fix says what to do; set for every status but ok.
	Fix string `json:"fix,omitempty"`
	// AutoFix names the fix `banger doctor --fix` can apply for this
	// outcome ("apt:PACKAGE", "kvm-group", "host-setup", "managed-key");
	// empty when there is none. It may be set on an ok check whose state
	// can still be completed now (a managed key generated on first use).
	AutoFix string `json:"auto_fix,omitempty"`
}

// DoctorReport is the answer to GET /v1/doctor and the result of a deep
// doctor operation.
type DoctorReport struct {
	Checks []Check `json:"checks"`
}

// Worst returns the most severe status in the report (fail > warn > skip > ok).
func (r DoctorReport) Worst() CheckStatus {
	rank := map[CheckStatus]int{CheckOK: 0, CheckSkip: 1, CheckWarn: 2, CheckFail: 3}
	worst := CheckOK
	for _, c := range r.Checks {
		if rank[c.Status] > rank[worst] {
			worst = c.Status
		}
	}
	return worst
}

// DeepDoctorRequest is the body of POST /v1/doctor/deep.
type DeepDoctorRequest struct {
	// ProbeTimeout bounds the KVM boot probe; zero means the default (20s).
	ProbeTimeout Duration `json:"probe_timeout_ms,omitempty"`
}
