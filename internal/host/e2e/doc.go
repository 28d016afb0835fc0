// Package e2e holds banger's end-to-end tests: they build the real banger,
// bangerd and banger-agent binaries and drive them the way a user does,
// over the real socket, in a temporary BANGER_HOME. The package has no
// non-test code beyond this comment.
package e2e
