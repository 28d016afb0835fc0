package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// dirKeys are the keys that move banger's directories: all that the
// daemon's lifecycle commands need of the file.
var dirKeys = []string{"data_dir", "state_dir", "runtime_dir"}

// ReadDirs reads only data_dir, state_dir and runtime_dir from
// paths.ConfigFile over paths, for the commands that must work while the
// rest of the file is broken: `banger daemon stop`, `status` and `logs`
// find the running daemon's socket and its log with them. Where Load
// refuses the whole file for one bad value, ReadDirs takes each of the
// three keys whose own value Load would accept, and keeps the default for
// the others. When the file is not valid TOML, the lines before its first
// table that set one of the three keys are read one by one. An unreadable
// or missing file leaves paths as they are.
//
// fromFile names the keys taken from the file, in dirKeys order.
func ReadDirs(paths Paths, env Env) (dirs Paths, fromFile []string) {
	home, _ := env.get("HOME")
	if !filepath.IsAbs(home) {
		home = ""
	}
	c := Default(paths, home)
	if paths.ConfigFile == "" {
		return c.Paths, nil
	}
	data, err := os.ReadFile(paths.ConfigFile)
	if err != nil {
		return c.Paths, nil
	}
	values := dirValues(data)
	for _, f := range fields() {
		v, ok := values[f.key]
		if !ok {
			continue
		}
		before := c.Paths
		if f.set(c, v) != nil || f.check(c) != nil {
			c.Paths = before
			continue
		}
		if c.Paths != before {
			fromFile = append(fromFile, f.key)
		}
	}
	return c.Paths, fromFile
}

// dirValues returns the values the TOML document data gives the
// directory keys: from the whole document when it parses, otherwise from
// each top-level line that sets one of them and parses alone.
func dirValues(data []byte) map[string]any {
	out := map[string]any{}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err == nil {
		for _, k := range dirKeys {
			if v, ok := doc[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			break // a table: the directory keys are top-level only
		}
		key, _, ok := strings.Cut(t, "=")
		if !ok || !slices.Contains(dirKeys, strings.TrimSpace(key)) {
			continue
		}
		var one map[string]any
		if _, err := toml.Decode(t, &one); err != nil {
			continue
		}
		for k, v := range one {
			out[k] = v
		}
	}
	return out
}
