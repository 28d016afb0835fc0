// Package archtest holds the tests that keep the repository's layout
// honest: every package documents what it owns, only the api and client
// packages are importable from outside the module, every package under
// internal/ sits on a side of the VM (host/, guest/ or shared/), and the
// sides do not mix: bangerd and banger link no guest-side package, and
// banger-agent no host-side one; and what the daemon and the client say
// names request fields, never a CLI flag.
package archtest
