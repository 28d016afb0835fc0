package cli

import (
	"errors"
	"strings"

	"github.com/bangerdev/banger/api"
	"github.com/spf13/cobra"
)

// The daemon names the request field at fault in an error by its JSON name
// (api.Error.Field) and writes that name in the message, never a flag: the
// TUI and a web form show the error beside their own field. The CLI shows
// it as its users expect, with the flag that sets the field in place of the
// field's name: "vcpus 40 is out of range: use 1..64" is printed as
// "--vcpus 40 is out of range: use 1..64".

// createFieldFlags are the flags of vm create and vm run by the
// api.CreateVMRequest field each sets (createFlags.bind).
var createFieldFlags = map[string]string{
	"name":       "--name",
	"image":      "--image",
	"vcpus":      "--vcpus",
	"memory_mib": "--memory",
	"disk_bytes": "--disk",
	"hypervisor": "--hypervisor",
	"cold":       "--cold",
	"egress":     "--egress",
	"publish":    "--publish",
}

// fieldFlags maps, for each command that sends a request with fields
// (keyed by its path below the root, "vm create"), the JSON name of each
// field it sets with a flag to that flag. Fields a command sets from its
// arguments (bootstrap's distro, a session's argv) have no entry: their
// messages are printed as the daemon wrote them. TestFieldFlagsExist keeps
// this table true to the commands' flags.
var fieldFlags = map[string]map[string]string{
	"vm create": createFieldFlags,
	"vm run":    withField(createFieldFlags, "mode", "--mode"),
	"image register": {
		"name":      "--name",
		"kernel":    "--kernel",
		"initrd":    "--initrd",
		"modules":   "--modules",
		"rootfs":    "--rootfs",
		"work_seed": "--work-seed",
		"link":      "--link",
	},
	"image bootstrap": {
		"suite":  "--suite",
		"name":   "--name",
		"mirror": "--mirror",
	},
	// The fields of api.WarmImageRequest (imageWarmFlags).
	"image warm": {
		"vcpus":      "--vcpus",
		"memory_mib": "--memory",
		"disk_bytes": "--disk",
		"hypervisor": "--hypervisor",
	},
	"image build": {
		"from":     "--from",
		"name":     "--name",
		"presets":  "--preset",
		"packages": "--packages",
		"script":   "--script",
	},
	// force is the query parameter of DELETE /v1/images/{name}.
	"image rm": {"force": "--force"},
	"vm session start": {
		"name": "--name",
		"cwd":  "--cwd",
		"env":  "--env",
		"tty":  "--tty",
	},
	"vm session logs":      {"since": "--since"},
	"vm session attach":    {"since": "--since"},
	"vm session kill":      {"signal": "--signal"},
	"vm exec":              {"cwd": "--workdir", "env": "--env", "tty": "--tty"},
	"vm workspace prepare": {"dir": "--dir", "mode": "--mode"},
	"doctor":               {"probe_timeout_ms": "--probe-timeout"},
	"web":                  {"listen": "--listen"},
}

// withField returns a copy of m with field → flag added.
func withField(m map[string]string, field, flag string) map[string]string {
	out := map[string]string{field: flag}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// flagError is a field error as the CLI prints it; it wraps the daemon's
// error, so errors.Is and errors.As see the *api.Error.
type flagError struct {
	msg string
	err error
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.err }

// withFlagNames returns err as cmd's user should read it: when err carries
// an *api.Error about a request field cmd sets with a flag, the field's
// name in the message becomes the flag. Any other error is returned as is.
func withFlagNames(cmd *cobra.Command, err error) error {
	var ae *api.Error
	if err == nil || cmd == nil || !errors.As(err, &ae) || ae.Field == "" {
		return err
	}
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	flag, ok := fieldFlags[path][ae.Field]
	if !ok {
		return err
	}
	return &flagError{msg: replaceField(err.Error(), ae.Field, flag), err: err}
}

// replaceField replaces the first use of field in msg, as a word, by flag.
// A word stands between spaces, may open with "(" and close with
// punctuation (":", ",", ";", ".", ")"); words inside double quotes (the
// values the daemon quotes with %q) or backquotes (commands to run) are
// not uses. When msg never uses field, the flag is added at the end in
// parentheses, so the reader still learns which flag is at fault.
func replaceField(msg, field, flag string) string {
	inQuote, inTick := false, false
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; {
		case c == '\\' && inQuote:
			i++ // an escaped character inside a quoted value
			continue
		case c == '"' && !inTick:
			inQuote = !inQuote
			continue
		case c == '`' && !inQuote:
			inTick = !inTick
			continue
		}
		if inQuote || inTick || !strings.HasPrefix(msg[i:], field) || !wordStart(msg, i) || !wordEnd(msg, i+len(field)) {
			continue
		}
		return msg[:i] + flag + msg[i+len(field):]
	}
	return msg + " (" + flag + ")"
}

// wordStart reports whether a word may begin at msg[i].
func wordStart(msg string, i int) bool {
	return i == 0 || msg[i-1] == ' ' || msg[i-1] == '('
}

// wordEnd reports whether a word may end just before msg[j]: at the end,
// before a space, or before closing punctuation that itself ends there.
func wordEnd(msg string, j int) bool {
	for ; j < len(msg); j++ {
		switch msg[j] {
		case ' ':
			return true
		case ':', ',', ';', '.', ')':
			continue
		default:
			return false
		}
	}
	return true
}
