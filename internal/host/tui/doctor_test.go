package tui

import (
	"testing"

	"github.com/bangerdev/banger/internal/host/daemontest"
)

func TestDoctorReportAndDeepChecks(t *testing.T) {
	root := fixedRoot(t)
	d := daemontest.Start(t, daemontest.Options{Fake: true, Root: root, Host: doctorHost{}})
	h := newHarness(t, fakeOptions(d))
	h.waitText("1 VMs")
	h.key("4")
	h.waitText("Quick checks:")
	h.settle()
	viewGolden(h, "doctor-quick", root, "/tmp/bgtui-ROOT0000")

	h.key("D")
	h.waitText("Deep checks:")
	h.settle()
	viewGolden(h, "doctor-deep", root, "/tmp/bgtui-ROOT0000")
}
