package ui

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runJS evaluates call(arg) for each arg in node, with the UI's modules
// importable as ./js/…, and returns the results (JSON) or the error each
// threw ({"error": message}).
func runJS(t *testing.T, module, fn string, args []any) []json.RawMessage {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the page's pure functions are not run here (apt-get install nodejs)")
	}
	dir := t.TempDir()
	err = fs.WalkDir(static, "static/js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		// .mjs: node then loads them as the browser does, as modules.
		dst := filepath.Join(dir, strings.TrimSuffix(strings.TrimPrefix(p, "static/"), ".js")+".mjs")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), ".js';", ".mjs';")), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(args)
	script := `import * as m from './js/` + module + `.mjs';
const args = JSON.parse(process.argv[2]);
const out = args.map((a) => { try { return m.` + fn + `(...[a].flat()); } catch (e) { return { error: e.message }; } });
process.stdout.write(JSON.stringify(out));`
	if err := os.WriteFile(filepath.Join(dir, "run.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "run.mjs", string(in))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var res []json.RawMessage
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	return res
}

func jsCompare(t *testing.T, module, fn string, cases map[string]string) {
	t.Helper()
	var args []any
	var want []string
	var names []string
	for in, w := range cases {
		var a any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatalf("case %s: %v", in, err)
		}
		args = append(args, a)
		want = append(want, w)
		names = append(names, in)
	}
	got := runJS(t, module, fn, args)
	for i := range names {
		if diff := cmp.Diff(want[i], string(got[i])); diff != "" {
			t.Errorf("%s(%s) (-want +got):\n%s", fn, names[i], diff)
		}
	}
}

// TestSplitWords: the exec box and session form split a command line as a
// shell splits plain words and quotes, and refuse an unclosed quote.
func TestSplitWords(t *testing.T) {
	jsCompare(t, "format", "splitWords", map[string]string{
		`"echo hi"`:                    `["echo","hi"]`,
		`"  sh -c 'echo a; echo b'  "`: `["sh","-c","echo a; echo b"]`,
		`"printf \"%s\\n\" x"`:         `["printf","%s\\n","x"]`,
		`"a\\ b c"`:                    `["a b","c"]`,
		`"''"`:                         `[""]`,
		`""`:                           `[]`,
		`"echo $HOME"`:                 `["echo","$HOME"]`,
		`"echo 'unclosed"`:             `{"error":"the command has an unclosed ' quote"}`,
		`"say \"it's\""`:               `["say","it's"]`,
		`"x\"y z\"w"`:                  `["xy zw"]`,
		`"tab\tseparated\nlines"`:      `["tab","separated","lines"]`,
		`"\"a\\\\b\""`:                 `["a\\b"]`,
	})
}

// TestParseSize: the create form reads sizes as the CLI does; a plain
// number is in the field's unit (MiB for memory, bytes for disk).
func TestParseSize(t *testing.T) {
	jsCompare(t, "format", "parseSize", map[string]string{
		`["2GiB", 1048576]`:  `2147483648`,
		`["512 MiB", 1]`:     `536870912`,
		`["2048", 1048576]`:  `2147483648`,
		`["16GiB", 1]`:       `17179869184`,
		`["1gb", 1]`:         `1000000000`,
		`["1.5GiB", 1]`:      `{"error":"\"1.5GiB\" has a fraction: write a whole number of a smaller unit, e.g. 1536MiB instead of 1.5GiB"}`,
		`["lots", 1]`:        `{"error":"\"lots\" is not a size: write it like 8GiB or 512MiB"}`,
		`["3 parsecs", 1]`:   `{"error":"\"3 parsecs\" has unknown unit \"parsecs\": use MiB, GiB or TiB"}`,
		`["-1GiB", 1]`:       `{"error":"\"-1GiB\" is not a size: write it like 8GiB or 512MiB"}`,
		`["99999999TiB", 1]`: `{"error":"\"99999999TiB\" is too large"}`,
	})
}

// TestInert: guest text keeps control characters and bidirectional
// overrides visible instead of acting on what is shown.
func TestInert(t *testing.T) {
	jsCompare(t, "dom", "inert", map[string]string{
		`"plain text\twith tab\nand newline"`: `"plain text\twith tab\nand newline"`,
		`"\u001b[31mred\u001b[0m"`:            `"␛[31mred␛[0m"`,
		`"bell\u0007 del\u007f nul\u0000"`:    `"bell␇ del␡ nul␀"`,
		`"csi\u009b2J"`:                       `"csi<U+009B>2J"`,
		`"abc\u202eevil.exe"`:                 `"abc<U+202E>evil.exe"`,
		`"isolate\u2066x\u2069"`:              `"isolate<U+2066>x<U+2069>"`,
		`"cr\rlf"`:                            `"cr␍lf"`,
		`"日本語 ok"`:                            `"日本語 ok"`,
	})
}

// TestDiffstat: the diff page reads a workspace diff as `banger vm diff`
// does; a guest's path stays the string it was (the page inserts it as
// text).
func TestDiffstat(t *testing.T) {
	jsCompare(t, "diffstat", "fileRows", map[string]string{
		`[[{"path":"a.go","status":"modified","added":3,"deleted":1}]]`:                                 `[["modified","3","1","a.go"]]`,
		`[[{"path":"new.go","old_path":"old.go","status":"renamed","added":0,"deleted":0}]]`:            `[["renamed","0","0","old.go => new.go"]]`,
		`[[{"path":"logo.png","status":"added","binary":true,"added":0,"deleted":0}]]`:                  `[["added","bin","","logo.png"]]`,
		`[[{"path":"<img src=x onerror=alert(1)>.txt","status":"type_changed","added":1,"deleted":2}]]`: `[["type changed","1","2","<img src=x onerror=alert(1)>.txt"]]`,
		`[null]`: `[]`,
	})
	jsCompare(t, "diffstat", "totals", map[string]string{
		`{"files":[{}],"added":1,"deleted":0}`:     `"1 file changed, 1 insertion(+), 0 deletions(-)"`,
		`{"files":[{},{}],"added":12,"deleted":3}`: `"2 files changed, 12 insertions(+), 3 deletions(-)"`,
		`{"files":[]}`: `"0 files changed, 0 insertions(+), 0 deletions(-)"`,
	})
	jsCompare(t, "diffstat", "sentFrom", map[string]string{
		`{"dir":"/root/repo","mode":"git","host_path":"/home/me/proj","head":"0123456789abcdef0123"}`: `"/root/repo sent from /home/me/proj at 0123456789ab (git mode)"`,
		`{"dir":"/root/repo","mode":"full_copy","host_path":"/srv/site"}`:                             `"/root/repo sent from /srv/site (full_copy mode)"`,
		`null`: `"nothing was sent into this VM’s workspace"`,
	})
	jsCompare(t, "diffstat", "commitsHeading", map[string]string{`0`: `"No commits in the guest"`, `1`: `"1 commit in the guest"`, `7`: `"7 commits in the guest"`})
}

// TestStageState: a stage's state on the operation page; the one a cancel
// stopped is canceled, not failed.
func TestStageState(t *testing.T) {
	jsCompare(t, "charts", "stageState", map[string]string{
		`[{"finished_at":"2026-12-05T07:00:01Z"}, {"state":"succeeded"}]`:                     `"done"`,
		`[{"finished_at":"2026-12-05T07:00:01Z","detail":"failed"}, {"state":"failed"}]`:      `"failed"`,
		`[{"finished_at":"2026-12-05T07:00:01Z","detail":"interrupted"}, {"state":"failed"}]`: `"failed"`,
		`[{"finished_at":"2026-12-05T07:00:01Z","detail":"canceled"}, {"state":"canceled"}]`:  `"canceled"`,
		`[{"started_at":"2026-12-05T07:00:00Z"}, {"state":"running"}]`:                        `"running"`,
		`[{"finished_at":"0001-01-01T00:00:00Z"}, {"state":"canceled"}]`:                      `"failed"`,
	})
}

// TestStateLabel: an operation's state badge has its mark.
func TestStateLabel(t *testing.T) {
	jsCompare(t, "format", "stateLabel", map[string]string{
		`"canceled"`:  `"⊘ canceled"`,
		`"failed"`:    `"✗ failed"`,
		`"succeeded"`: `"✓ succeeded"`,
	})
}
