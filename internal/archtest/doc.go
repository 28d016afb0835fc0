// Package archtest holds the tests that keep the repository's layout
// honest: every package documents what it owns, and only the api and client
// packages are importable from outside the module.
package archtest
