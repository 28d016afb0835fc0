package agentproto

// The KVM probe's contract between the host that boots it
// (internal/host/kvmprobe) and banger-agent as the probe initramfs's /init
// (internal/guest/guestinit): the kernel passes every word after " -- " on its
// command line to /init as arguments.
const (
	// ProbeMarker starts the line the probe writes to the console once the
	// guest runs userspace code. The host looks for it in the serial log.
	ProbeMarker = "BANGER-PROBE-OK"

	// ProbeArg is the argument that makes banger-agent run the probe.
	ProbeArg = "probe"

	// ProbeKernelArgs ends the kernel command line of a probe boot: the
	// kernel hands the words after "--" to /init as its arguments.
	ProbeKernelArgs = "-- " + ProbeArg
)
