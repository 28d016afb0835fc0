package guestsession

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// launch is a Spec checked and resolved: everything Start needs to run it.
type launch struct {
	spec    Spec
	path    string // resolved argv[0]
	cwd     string
	env     []string
	envKeys []string
}

// validName allows up to 63 letters, digits, '.', '_' and '-', starting
// with a letter or digit.
func validName(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

// validate checks the Spec's own shape, before anything touches the guest.
func validate(spec Spec) error {
	var problems []string
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		problems = append(problems, "argv is empty: give the command to run")
	}
	switch spec.Mode {
	case "", ModePipe, ModeTTY:
	default:
		problems = append(problems, fmt.Sprintf("mode %q is unknown: use %q or %q", spec.Mode, ModePipe, ModeTTY))
	}
	if spec.Name != "" && !validName(spec.Name) {
		problems = append(problems, fmt.Sprintf("name %q is invalid: use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", spec.Name))
	}
	if spec.Cwd != "" && !filepath.IsAbs(spec.Cwd) {
		problems = append(problems, fmt.Sprintf("cwd %q is relative: give an absolute path", spec.Cwd))
	}
	for _, kv := range spec.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			problems = append(problems, fmt.Sprintf("env entry %q is not KEY=VALUE", kv))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, strings.Join(problems, "; "))
	}
	return nil
}

// preflight resolves the Spec against the guest: the working directory and
// the command. It reports every problem it finds at once.
func (m *Manager) preflight(spec Spec) (launch, error) {
	if err := validate(spec); err != nil {
		return launch{}, err
	}
	l := launch{spec: spec, cwd: spec.Cwd}
	if l.spec.Mode == "" {
		l.spec.Mode = ModePipe
	}
	if l.spec.Mode == ModeTTY {
		if l.spec.Rows == 0 {
			l.spec.Rows = 24
		}
		if l.spec.Cols == 0 {
			l.spec.Cols = 80
		}
	}
	l.env, l.envKeys = mergeEnv(m.cfg.baseEnv, spec.Env, l.spec.Mode)

	var diags []string
	if l.cwd == "" {
		l.cwd = m.defaultCwd()
	}
	if l.cwd == "" {
		diags = append(diags, fmt.Sprintf("no default cwd: none of %s is a directory; give a cwd", strings.Join(m.cfg.defaultCwd, ", ")))
	} else if st, err := os.Stat(l.cwd); err != nil {
		if os.IsNotExist(err) {
			diags = append(diags, fmt.Sprintf("cwd %q does not exist: create it (e.g. banger vm workspace prepare) or pick another", l.cwd))
		} else {
			diags = append(diags, fmt.Sprintf("cwd %q: %v", l.cwd, err))
		}
	} else if !st.IsDir() {
		diags = append(diags, fmt.Sprintf("cwd %q is not a directory", l.cwd))
	}

	path, diag := lookPath(spec.Argv[0], l.cwd, envValue(l.env, "PATH"))
	if diag != "" {
		diags = append(diags, diag)
	}
	l.path = path
	if len(diags) > 0 {
		return launch{}, &PreflightError{Diagnostics: diags}
	}
	return l, nil
}

// defaultCwd is the first of the configured default directories that exists.
func (m *Manager) defaultCwd() string {
	for _, d := range m.cfg.defaultCwd {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return ""
}

// lookPath resolves name like a shell would, but in the session's PATH
// rather than the agent's. It returns the path or a diagnostic.
func lookPath(name, cwd, pathEnv string) (string, string) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		switch err := executable(p); {
		case err == nil:
			return p, ""
		case os.IsNotExist(err):
			return "", fmt.Sprintf("command %q does not exist", name)
		default:
			return "", fmt.Sprintf("command %q: %v", name, err)
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cwd, dir)
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, ""
		}
	}
	return "", fmt.Sprintf("command %q not found in PATH=%s: install it in the guest image or give its full path", name, pathEnv)
}

// executable reports why path cannot be executed, or nil.
func executable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("is not executable (mode %v): chmod +x it", st.Mode()&fs.ModePerm)
	}
	return nil
}

// mergeEnv lays extra over base (later entries win) and returns the result
// and the keys of extra in order of appearance. TTY sessions get a TERM unless
// one is given.
func mergeEnv(base, extra []string, mode Mode) ([]string, []string) {
	var env []string
	index := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			return
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	for _, kv := range base {
		set(kv)
	}
	var keys []string
	seen := map[string]bool{}
	for _, kv := range extra {
		set(kv)
		k, _, _ := strings.Cut(kv, "=")
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if _, ok := index["TERM"]; !ok && mode == ModeTTY {
		set("TERM=xterm-256color")
	}
	return env, keys
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
