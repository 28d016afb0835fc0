//go:build !crashpoints

package crashpoint

// enabled: this build has no crash points.
const enabled = false

// Hit kills the daemon when kind/stage/when is the armed point (a
// crashpoints build only).
func Hit(kind, stage, when string) {}
