// Package gotoolchain holds the tests of scripts/install-go.sh, which puts
// the Go toolchain go.mod names at /usr/local/go on a host that has none or
// an older one (make quickstart, .ci/run): they run the script against a
// stand-in module proxy.
package gotoolchain
