// Package manpage writes banger's manual pages, section 1, from its Cobra
// commands (github.com/spf13/cobra/doc): one page per command of the CLI
// (banger.1, banger-vm-create.1, ...) with its description, flags and
// examples, and bangerd.1 for the daemon. `make man` runs it through the
// hidden `banger __man DIR`; `make install` installs the pages.
package manpage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Manual is the title of banger's manual, shown in each page's header.
const Manual = "banger manual"

// Write writes a page for root and each of its available commands (not
// hidden, not help) into dir, creating it, and returns the files written,
// sorted. version goes into the pages' footer ("banger 0.3.0"). The date
// is the build's: SOURCE_DATE_EPOCH when set (reproducible builds), else
// today.
func Write(dir, version string, roots ...*cobra.Command) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the man page directory: %w", err)
	}
	for _, root := range roots {
		root.DisableAutoGenTag = true
		header := &doc.GenManHeader{Section: "1", Source: "banger " + version, Manual: Manual}
		if err := doc.GenManTree(root, header, dir); err != nil {
			return nil, fmt.Errorf("writing the man pages of %s into %s: %w", root.Name(), dir, err)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.1"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// PageName is the file of cmd's page ("banger-vm-create.1").
func PageName(cmd *cobra.Command) string {
	name := cmd.CommandPath()
	out := make([]rune, 0, len(name))
	for _, r := range name {
		if r == ' ' {
			r = '-'
		}
		out = append(out, r)
	}
	return string(out) + ".1"
}

// Bangerd describes bangerd for its page. bangerd parses its own flags
// (package daemon, Main); this command only carries its words, and a test
// holds its flags to `bangerd --help`.
func Bangerd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bangerd",
		Short: "banger's daemon: owns its state, images, VMs and networking",
		Long: `bangerd owns banger's store, images, VMs and host networking, and serves
the banger CLI, TUI and web UI on a Unix socket that only its user (and
root) may use. The banger CLI starts it on demand in its own session, its
log in bangerd.log in the state directory (see ` + "`banger daemon logs`" + `).

Under systemd (bangerd.service: a system unit for root's daemon, a user
unit for a rootless one; enable it with ` + "`systemctl enable --now bangerd`" + `,
or ` + "`systemctl --user enable --now bangerd`" + `) systemd runs it, restarts it
on failure and keeps its log in the journal (` + "`journalctl -u bangerd`" + `);
banger then starts, stops and restarts it through systemctl and never
runs a second daemon. Stopping bangerd never stops running VMs: the next
one adopts them.

bangerd exits on SIGINT or SIGTERM after finishing what is in flight.
` + "`bangerd version [--json]`" + ` prints its version and build id.`,
		Example: `  systemctl enable --now bangerd            root's daemon under systemd
  systemctl --user enable --now bangerd     a rootless daemon under systemd
  bangerd --log-to-stderr                   in the foreground, to debug
  bangerd version --json`,
		Run: func(*cobra.Command, []string) {},
	}
	c.Flags().String("config", "", "config file (default $XDG_CONFIG_HOME/banger/config.toml, or $BANGER_CONFIG)")
	c.Flags().Bool("log-to-stderr", false, "log to stderr (the journal under systemd) instead of the log file; implied when stderr is the journal stream (JOURNAL_STREAM)")
	return c
}
