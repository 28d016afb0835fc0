package kernelstage

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ModuleClosure resolves names (module names as in modules.dep, without .ko;
// '-' and '_' are the same, as for the kernel) to the module files that must
// be loaded for them, dependencies first, as paths relative to modulesDir.
// Needed modules built into the kernel (modules.builtin) are returned in
// builtin, names neither present nor built in in missing; neither is an
// error. A dependency that cannot be found, or a dependency cycle, is.
//
// Dependencies come from modulesDir/modules.dep when it exists. A kernel
// package usually ships none (its install script runs depmod), so otherwise
// each needed module's depends= field is read from its .modinfo ELF section,
// decompressing .ko.xz/.ko.zst/.ko.gz files in memory. That reads only the
// few modules the closure touches, which is faster than running depmod over
// the whole tree and writes nothing into it, so depmod is never run.
func ModuleClosure(modulesDir string, names []string) (ordered []string, builtin []string, missing []string, err error) {
	t, err := loadTree(modulesDir)
	if err != nil {
		return nil, nil, nil, err
	}
	return t.closure(names)
}

// moduleTree indexes a lib/modules/<release> directory.
type moduleTree struct {
	dir     string
	paths   map[string]string   // module name -> path relative to dir
	deps    map[string][]string // module name -> dependency names; from modules.dep, or filled lazily from modinfo
	fromDep bool                // deps came from modules.dep
	builtin map[string]string   // module name -> path listed in modules.builtin
}

// moduleName turns a module path or name into the kernel's module name:
// base name, no .ko or compression suffix, '-' as '_'.
func moduleName(p string) string {
	name := path.Base(filepath.ToSlash(p))
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		name = strings.TrimSuffix(name, suf)
	}
	name = strings.TrimSuffix(name, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}

// moduleCompression returns the compression of a module file by its name.
func moduleCompression(p string) string {
	switch {
	case strings.HasSuffix(p, ".ko.xz"):
		return compXZ
	case strings.HasSuffix(p, ".ko.zst"):
		return compZstd
	case strings.HasSuffix(p, ".ko.gz"):
		return compGzip
	}
	return compNone
}

// isModuleFile reports whether a file name is a (possibly compressed) module.
func isModuleFile(name string) bool {
	return strings.HasSuffix(name, ".ko") || moduleCompression(name) != compNone
}

// plainKO is a module path with its compression suffix removed.
func plainKO(p string) string {
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(p, ".ko"+suf) {
			return strings.TrimSuffix(p, suf)
		}
	}
	return p
}

// loadTree reads modules.dep (or walks the tree) and modules.builtin.
func loadTree(dir string) (*moduleTree, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("kernelstage: modules dir: %w; pass the kernel's lib/modules/<release> directory", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("kernelstage: modules dir %s is not a directory; pass the kernel's lib/modules/<release> directory", dir)
	}
	t := &moduleTree{dir: dir, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]string{}}
	if err := t.readBuiltin(); err != nil {
		return nil, err
	}
	switch err := t.readDep(); {
	case err == nil:
		t.fromDep = true
	case errors.Is(err, fs.ErrNotExist):
		if err := t.walk(); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	return t, nil
}

// readBuiltin reads modules.builtin; a tree without one has nothing built in
// as far as the tree can tell.
func (t *moduleTree) readBuiltin() error {
	f, err := os.Open(filepath.Join(t.dir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kernelstage: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			t.builtin[moduleName(line)] = line
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("kernelstage: reading modules.builtin: %w", err)
	}
	return nil
}

// builtinPaths lists modules.builtin, sorted.
func (t *moduleTree) builtinPaths() []string {
	out := make([]string, 0, len(t.builtin))
	for _, p := range t.builtin {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// readDep reads modules.dep: "kernel/a.ko: kernel/b.ko kernel/c.ko".
func (t *moduleTree) readDep() error {
	name := filepath.Join(t.dir, "modules.dep")
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("kernelstage: %s:%d: %q has no ':'; regenerate it with depmod -b", name, lineNo, line)
		}
		rel, err := t.relPath(mod)
		if err != nil {
			return fmt.Errorf("kernelstage: %s:%d: %w", name, lineNo, err)
		}
		n := moduleName(rel)
		t.paths[n] = rel
		var names []string
		for _, d := range strings.Fields(deps) {
			names = append(names, moduleName(d))
		}
		t.deps[n] = names
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("kernelstage: reading %s: %w", name, err)
	}
	return nil
}

// relPath makes a modules.dep path relative to the tree. Old depmod
// versions wrote absolute /lib/modules/<release>/... paths.
func (t *moduleTree) relPath(p string) (string, error) {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "/") {
		return path.Clean(p), nil
	}
	marker := "/lib/modules/" + filepath.Base(filepath.Clean(t.dir)) + "/"
	if i := strings.Index(p, marker); i >= 0 {
		return path.Clean(p[i+len(marker):]), nil
	}
	return "", fmt.Errorf("absolute module path %q is outside lib/modules/%s; regenerate modules.dep with depmod -b", p, filepath.Base(t.dir))
}

// walk indexes every module file in the tree, for trees without
// modules.dep. Like depmod, a module under updates/ wins over one of the
// same name elsewhere; otherwise the lexically first path wins.
func (t *moduleTree) walk() error {
	err := filepath.WalkDir(t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isModuleFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(t.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		n := moduleName(rel)
		if old, ok := t.paths[n]; ok && (strings.HasPrefix(old, "updates/") || !strings.HasPrefix(rel, "updates/")) {
			return nil // WalkDir visits in lexical order, so old sorts first
		}
		t.paths[n] = rel
		return nil
	})
	if err != nil {
		return fmt.Errorf("kernelstage: indexing modules in %s: %w", t.dir, err)
	}
	return nil
}

// depsOf returns the dependency names of a module in the tree.
func (t *moduleTree) depsOf(name string) ([]string, error) {
	if deps, ok := t.deps[name]; ok || t.fromDep {
		return deps, nil
	}
	info, err := readModinfo(filepath.Join(t.dir, filepath.FromSlash(t.paths[name])))
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, d := range strings.Split(info["depends"], ",") {
		if d = strings.TrimSpace(d); d != "" {
			deps = append(deps, moduleName(d))
		}
	}
	t.deps[name] = deps
	return deps, nil
}

// closure resolves names depth first, each module after its dependencies.
func (t *moduleTree) closure(names []string) (ordered, builtin, missing []string, err error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			cycle := append(stack[slices.Index(stack, name):], name)
			return fmt.Errorf("kernelstage: module dependency cycle %s in %s; the tree is damaged: regenerate modules.dep with depmod -b, or reinstall the kernel package", strings.Join(cycle, " -> "), t.dir)
		}
		state[name] = visiting
		deps, err := t.depsOf(name)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if _, ok := t.paths[d]; !ok {
				if _, ok := t.builtin[d]; ok {
					continue
				}
				return fmt.Errorf("kernelstage: module %s depends on %s, which is neither in %s nor built in (modules.builtin); the tree is incomplete: reinstall the kernel's modules", name, d, t.dir)
			}
			if err := visit(d, append(stack, name)); err != nil {
				return err
			}
		}
		state[name] = done
		ordered = append(ordered, t.paths[name])
		return nil
	}
	seen := map[string]bool{}
	for _, raw := range names {
		name := moduleName(raw)
		if seen[name] {
			continue
		}
		seen[name] = true
		if _, ok := t.paths[name]; ok {
			if err := visit(name, nil); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		if _, ok := t.builtin[name]; ok {
			builtin = append(builtin, name)
			continue
		}
		missing = append(missing, name)
	}
	return ordered, builtin, missing, nil
}

// readModule returns a module file's contents, decompressed.
func readModule(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("kernelstage: reading module: %w; if modules.dep names it, regenerate modules.dep with depmod -b", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if err := decompress(moduleCompression(p), bufio.NewReader(f), &buf); err != nil {
		return nil, fmt.Errorf("kernelstage: decompressing module %s: %w", p, err)
	}
	return buf.Bytes(), nil
}

// readModinfo returns the key=value pairs of a module's .modinfo section.
// Keys that repeat (alias=, parm=) keep their last value.
func readModinfo(p string) (map[string]string, error) {
	data, err := readModule(p)
	if err != nil {
		return nil, err
	}
	return modinfo(p, data)
}

func modinfo(p string, data []byte) (map[string]string, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("kernelstage: module %s is not an ELF object (%v); the file is damaged: reinstall the kernel's modules", p, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("kernelstage: module %s has no .modinfo section; is it a kernel module?", p)
	}
	raw, err := io.ReadAll(sec.Open())
	if err != nil {
		return nil, fmt.Errorf("kernelstage: reading .modinfo of %s: %w", p, err)
	}
	info := map[string]string{}
	for _, field := range bytes.Split(raw, []byte{0}) {
		if k, v, ok := bytes.Cut(field, []byte("=")); ok {
			info[string(k)] = string(v)
		}
	}
	return info, nil
}

// moduleRelease returns the release a module was built for: the first
// word of its vermagic.
func moduleRelease(p string, data []byte) (string, error) {
	info, err := modinfo(p, data)
	if err != nil {
		return "", err
	}
	fields := strings.Fields(info["vermagic"])
	if len(fields) == 0 {
		return "", fmt.Errorf("kernelstage: module %s has no vermagic; is it a kernel module?", p)
	}
	return fields[0], nil
}
