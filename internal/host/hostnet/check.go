package hostnet

import (
	"errors"
	"strings"
)

// CheckBridge reports why name cannot be banger's bridge: it must be a
// name the kernel takes for an interface (dev_valid_name: 1 to 15 bytes,
// not "." or "..", no '/', ':', space or control character), and must not
// start with the TAP pool's prefix, whose names the pool owns.
// Config.Validate holds Bridge to it, and so does the config file's
// network.bridge.
func CheckBridge(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return errors.New("is not a Linux interface name (1 to 15 bytes)")
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; b == '/' || b == ':' || b <= ' ' || b == 0x7f {
			return errors.New(`is not a Linux interface name (no "/", ":", spaces or control characters)`)
		}
	}
	if strings.HasPrefix(name, tapPrefix) {
		return errors.New(`starts with "` + tapPrefix + `" and so collides with the TAP pool's names`)
	}
	return nil
}
