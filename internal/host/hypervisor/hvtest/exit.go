package hvtest

import "github.com/bangerdev/banger/internal/host/hypervisor"

// End ends h's VM as Crash does and records how its "process" ended
// (hypervisor.RecordExit), as hypervisor.Start does for a real one it
// reaps: hypervisor.ExitOf then tells it (e.g. exit status 0 for a guest
// that powered off, signal SIGKILL for a killed hypervisor).
func (f *Fake) End(h hypervisor.Handle, e hypervisor.Exit) {
	f.Crash(h)
	hypervisor.RecordExit(h, e)
}
