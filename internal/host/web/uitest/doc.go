// Package uitest holds the web UI's browser tests: headless Chromium
// (package browsertest) driving the pages of a real in-process bangerd
// with the fake hypervisor (package daemontest) over its loopback web
// listener — login, the 401 page, the live dashboard, the create form's
// field errors and live stages, delete with its confirmation, pause,
// resume, fork and image warm, a VM's workspace changes shown with a
// hostile guest's paths, commits and patch as text — and
// TestScreenshots, which `make screenshots` runs to draw the README's
// pictures. The package has no code of its own; the real-QEMU browser
// test is TestWebUI in internal/host/e2e.
package uitest
