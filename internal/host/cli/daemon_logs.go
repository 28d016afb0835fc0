package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bangerdev/banger/internal/host/daemonctl"
	"github.com/bangerdev/banger/internal/host/logrotate"
)

func newDaemonLogsCmd(app *App) *cobra.Command {
	var (
		lines  int
		follow bool
		raw    bool
	)
	c := &cobra.Command{
		Use:   "logs",
		Short: "Print bangerd's log (works when the daemon is down)",
		Long: `Print the daemon's structured log. Each record is shown as one line:
time, level, message, then its fields. --json prints the records as stored.
The log is read from the state directory, so it works while the daemon is
stopped or failing to start, and while the config file is broken (it then
reads only the file's directories, with a warning). bangerd rotates the log to bangerd.log.1 at
16 MiB; -n reads back into that file, and -f follows across a rotation.

When systemd manages bangerd (its unit is enabled or active), the daemon
logs to the journal instead: the log is then read with journalctl
(` + "`journalctl -u bangerd`" + `, --user for a rootless daemon), -n, -f and
--json passed on.`,
		Example: "  banger daemon logs\n  banger daemon logs -n 200\n  banger daemon logs -f --json | jq .",
		Args:    noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			paths, cfgErr, warn, err := app.lifecyclePaths()
			if err != nil {
				return err
			}
			if unit := daemonctl.FindUnit(app.Env, app.UID); unit.Manages(c.Context()) {
				return app.journalLogs(c.Context(), unit, lines, follow, raw)
			}
			path := paths.LogFile()
			f, err := os.Open(path)
			if errors.Is(err, fs.ErrNotExist) && cfgErr != nil {
				return fmt.Errorf("no daemon log at %s, and the config file, which may move it (state_dir), is broken: %v; fix the file and check it with `banger config validate`", path, cfgErr)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no daemon log at %s yet: start the daemon with `banger daemon start`", path)
			}
			if err != nil {
				return err
			}
			warn()
			defer func() { f.Close() }()
			print := func(line string) {
				if raw {
					fmt.Fprintln(app.Stdout, line)
				} else {
					fmt.Fprintln(app.Stdout, prettyLogLine(line))
				}
			}
			// The log rotates to bangerd.log.1 while the daemon runs: the
			// backup is read first, so -n counts across both files.
			var tail []string
			keep := func(rd *bufio.Reader) {
				for {
					line, err := rd.ReadString('\n')
					if line != "" && strings.HasSuffix(line, "\n") {
						tail = append(tail, strings.TrimSuffix(line, "\n"))
						if lines > 0 && len(tail) > lines {
							tail = tail[1:]
						}
					}
					if err != nil {
						break
					}
				}
			}
			if b, err := os.Open(logrotate.Backup(path)); err == nil {
				keep(bufio.NewReader(b))
				b.Close()
			}
			rd := bufio.NewReader(f)
			keep(rd)
			for _, l := range tail {
				print(l)
			}
			if !follow {
				return nil
			}
			var partial string
			for {
				select {
				case <-c.Context().Done():
					return nil
				case <-time.After(200 * time.Millisecond):
				}
				for {
					chunk, err := rd.ReadString('\n')
					partial += chunk
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					print(strings.TrimSuffix(partial, "\n"))
					partial = ""
				}
				// Drained: if the log rotated meanwhile, follow the new file.
				if rotated(f, path) {
					nf, err := os.Open(path)
					if err != nil {
						continue
					}
					f.Close()
					f, rd = nf, bufio.NewReader(nf)
				}
			}
		},
	}
	c.Flags().IntVarP(&lines, "lines", "n", 50, "show the last N records (0 for all)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records")
	c.Flags().BoolVar(&raw, "json", false, "print records as stored (JSON lines)")
	return c
}

// journalLogs prints the log of a daemon systemd manages, which is in the
// journal, through journalctl.
func (app *App) journalLogs(ctx context.Context, unit *daemonctl.Unit, lines int, follow, asJSON bool) error {
	jc := daemonctl.LookPath(app.Env, "journalctl")
	if jc == "" {
		return fmt.Errorf("bangerd runs under systemd and logs to the journal, but journalctl is not on PATH: read the log with `%s` where it is", unit.Journal())
	}
	fmt.Fprintf(app.Stderr, "banger: bangerd runs under systemd: its log is in the journal (`%s`)\n", unit.Journal())
	cmd := exec.CommandContext(ctx, jc, unit.JournalArgs(lines, follow, asJSON)...)
	cmd.Stdout, cmd.Stderr = app.Stdout, app.Stderr
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w (a user outside the systemd-journal and adm groups may not read the system journal: try with sudo)", jc, err)
	}
	return nil
}

// rotated reports whether path now names another file than f, as after
// the daemon rotated its log.
func rotated(f *os.File, path string) bool {
	open, err1 := f.Stat()
	now, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && !os.SameFile(open, now)
}

// prettyLogLine renders one slog JSON record as "time level msg k=v ...".
func prettyLogLine(line string) string {
	var rec map[string]any
	if json.Unmarshal([]byte(line), &rec) != nil {
		return line
	}
	ts, _ := rec["time"].(string)
	if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
		ts = t.Local().Format("2006-01-02 15:04:05.000")
	}
	level, _ := rec["level"].(string)
	msg, _ := rec["msg"].(string)
	delete(rec, "time")
	delete(rec, "level")
	delete(rec, "msg")
	keys := make([]string, 0, len(rec))
	for k := range rec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s", ts, level, msg)
	for _, k := range keys {
		v := fmt.Sprint(rec[k])
		if strings.ContainsAny(v, " \t\"") {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}
