// Package archtest holds the tests that keep the repository's layout
// honest: every package documents what it owns, only the api and client
// packages are importable from outside the module, and the two sides of
// the VM do not mix: bangerd and banger link no guest-side package, and
// banger-agent links no host-side one (sides_test.go lists the sides).
package archtest
