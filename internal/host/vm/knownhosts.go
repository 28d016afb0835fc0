package vm

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxHostKeyLine bounds one host key line from the guest; real keys are
// well under 1 KiB (an RSA-16384 key is about 2.8 KiB).
const maxHostKeyLine = 8 << 10

// knownHostsFile renders the known_hosts lines pinning keys for ip. The
// keys come from the guest, which is untrusted (see hostKeys); the line
// written is re-marshalled from the parsed key ("IP TYPE BASE64"), so no
// comment, option, newline or other byte of the guest's choosing reaches
// the file. Keys that do not parse are returned in skipped with the reason.
func knownHostsFile(ip string, keys []string) (content []byte, skipped []string) {
	valid, skipped := hostKeys(keys)
	var b strings.Builder
	for _, k := range valid {
		fmt.Fprintf(&b, "%s %s\n", ip, k)
	}
	return []byte(b.String()), skipped
}

// hostKeys keeps the guest's host keys that parse as one OpenSSH public
// key each ("TYPE BASE64 [COMMENT]", no options), normalised to
// "TYPE BASE64"; the others are returned in skipped with the reason.
func hostKeys(keys []string) (valid, skipped []string) {
	for _, k := range keys {
		if len(k) > maxHostKeyLine {
			skipped = append(skipped, fmt.Sprintf("a %d-byte key (longer than %d bytes)", len(k), maxHostKeyLine))
			continue
		}
		if strings.ContainsAny(k, "\r\n\x00") {
			skipped = append(skipped, fmt.Sprintf("%q: a line break or NUL inside one key", shortKey(k)))
			continue
		}
		pub, _, options, _, err := ssh.ParseAuthorizedKey([]byte(k))
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%q: %v", shortKey(k), err))
			continue
		case len(options) > 0:
			skipped = append(skipped, fmt.Sprintf("%q: it carries options", shortKey(k)))
			continue
		}
		valid = append(valid, pub.Type()+" "+marshalBase64(pub))
	}
	return valid, skipped
}

// marshalBase64 is the key's wire form in base64, the middle field of an
// authorized_keys or known_hosts line.
func marshalBase64(pub ssh.PublicKey) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) // "TYPE BASE64"
	_, b64, _ := strings.Cut(line, " ")
	return b64
}

// shortKey cuts a guest string for a log message.
func shortKey(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
