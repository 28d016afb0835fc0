package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bangerdev/banger/internal/shared/agentproto"
	"github.com/bangerdev/banger/internal/shared/bootpayload"
)

// full is a call with every field set and valid.
func full() agentproto.Identity {
	return agentproto.Identity{
		TimeUnixNano: 1_800_000_000_000_000_000,
		Seed:         bytes.Repeat([]byte{7}, 64),
		MachineID:    "0123456789abcdef0123456789abcdef",
		BootID:       "01234567-89ab-cdef-0123-456789abcdef",
		Hostname:     "quiet-otter",
		Net:          &agentproto.IdentityNet{Address: "10.200.0.5/24", Gateway: "10.200.0.1", MAC: "02:00:0a:c8:00:05", DNS: []string{"10.200.0.1", "fd00::53"}},
		HostKeys:     true,
		Payload:      &bootpayload.Payload{Files: []bootpayload.File{{Path: "/root/.config/tool/token", Mode: 0o600, Data: []byte("t")}}, AuthorizedKeys: []string{"ssh-ed25519 AAAA banger"}},
		Key:          bytes.Repeat([]byte{9}, bootpayload.KeySize),
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*agentproto.Identity)
		field  string // "" means valid
		reason string // part of the message
	}{
		{"full call", func(*agentproto.Identity) {}, "", ""},
		{"clock only", func(id *agentproto.Identity) { *id = agentproto.Identity{TimeUnixNano: 1} }, "", ""},
		{"no clock", func(id *agentproto.Identity) { id.TimeUnixNano = 0 }, "time_unix_nano", "required"},
		{"negative clock", func(id *agentproto.Identity) { id.TimeUnixNano = -5 }, "time_unix_nano", "required"},
		{"empty seed", func(id *agentproto.Identity) { id.Seed = []byte{} }, "seed", "0 bytes"},
		{"short seed", func(id *agentproto.Identity) { id.Seed = make([]byte, agentproto.IdentitySeedMin-1) }, "seed", "31 bytes"},
		{"shortest seed", func(id *agentproto.Identity) { id.Seed = make([]byte, agentproto.IdentitySeedMin) }, "", ""},
		{"longest seed", func(id *agentproto.Identity) { id.Seed = make([]byte, agentproto.IdentitySeedMax) }, "", ""},
		{"long seed", func(id *agentproto.Identity) { id.Seed = make([]byte, agentproto.IdentitySeedMax+1) }, "seed", "513 bytes"},
		{"machine-id uppercase", func(id *agentproto.Identity) { id.MachineID = strings.ToUpper(id.MachineID) }, "machine_id", "lowercase"},
		{"machine-id short", func(id *agentproto.Identity) { id.MachineID = id.MachineID[1:] }, "machine_id", ""},
		{"machine-id with a path", func(id *agentproto.Identity) { id.MachineID = "../../../../../../etc/passwd0000" }, "machine_id", ""},
		{"machine-id zero", func(id *agentproto.Identity) { id.MachineID = strings.Repeat("0", 32) }, "machine_id", "not all zero"},
		{"boot id without dashes", func(id *agentproto.Identity) { id.BootID = "0123456789abcdef0123456789abcdef" }, "boot_id", "UUID"},
		{"boot id uppercase", func(id *agentproto.Identity) { id.BootID = strings.ToUpper(id.BootID) }, "boot_id", ""},
		{"boot id with newline", func(id *agentproto.Identity) { id.BootID = "01234567-89ab-cdef-0123-456789abcde\n" }, "boot_id", ""},
		{"hostname with space", func(id *agentproto.Identity) { id.Hostname = "bad name" }, "hostname", "not allowed"},
		{"hostname with slash", func(id *agentproto.Identity) { id.Hostname = "a/b" }, "hostname", ""},
		{"hostname too long", func(id *agentproto.Identity) { id.Hostname = strings.Repeat("a", 65) }, "hostname", "1 to 64"},
		{"hostname leading hyphen", func(id *agentproto.Identity) { id.Hostname = "-a" }, "hostname", ""},
		{"address without prefix", func(id *agentproto.Identity) { id.Net.Address = "10.200.0.5" }, "net.address", "prefix length"},
		{"address garbage", func(id *agentproto.Identity) { id.Net.Address = "ten/24" }, "net.address", ""},
		{"network address", func(id *agentproto.Identity) { id.Net.Address = "10.200.0.0/24" }, "net.address", "not a host address"},
		{"loopback address", func(id *agentproto.Identity) { id.Net.Address = "127.0.0.2/8" }, "net.address", ""},
		{"point-to-point /32", func(id *agentproto.Identity) { id.Net.Address = "10.200.0.5/32" }, "", ""},
		{"IPv6", func(id *agentproto.Identity) { id.Net.Address, id.Net.Gateway = "fd00::5/64", "fd00::1" }, "", ""},
		{"gateway garbage", func(id *agentproto.Identity) { id.Net.Gateway = "gw" }, "net.gateway", ""},
		{"gateway other family", func(id *agentproto.Identity) { id.Net.Gateway = "fd00::1" }, "net.gateway", "different IP families"},
		{"no gateway", func(id *agentproto.Identity) { id.Net.Gateway = "" }, "", ""},
		{"MAC missing", func(id *agentproto.Identity) { id.Net.MAC = "" }, "net.mac", ""},
		{"MAC too long", func(id *agentproto.Identity) { id.Net.MAC = "02:00:00:00:00:00:00:01" }, "net.mac", "Ethernet address"},
		{"MAC multicast", func(id *agentproto.Identity) { id.Net.MAC = "01:00:5e:00:00:01" }, "net.mac", "unicast"},
		{"MAC broadcast", func(id *agentproto.Identity) { id.Net.MAC = "ff:ff:ff:ff:ff:ff" }, "net.mac", "unicast"},
		{"MAC zero", func(id *agentproto.Identity) { id.Net.MAC = "00:00:00:00:00:00" }, "net.mac", "unicast"},
		{"DNS garbage", func(id *agentproto.Identity) { id.Net.DNS = []string{"1.1.1.1", "one"} }, "net.dns", "\"one\""},
		{"too many DNS", func(id *agentproto.Identity) { id.Net.DNS = strings.Fields(strings.Repeat("1.1.1.1 ", maxDNS+1)) }, "net.dns", "at most"},
		{"payload escapes home", func(id *agentproto.Identity) { id.Payload.Files[0].Path = "/etc/shadow" }, "payload", ""},
		{"payload dot-dot", func(id *agentproto.Identity) { id.Payload.Files[0].Path = "/root/../etc/shadow" }, "payload", ""},
		{"payload setuid", func(id *agentproto.Identity) { id.Payload.Files[0].Mode = 0o4755 }, "payload", "permission bits"},
		{"payload two-line key", func(id *agentproto.Identity) { id.Payload.AuthorizedKeys = []string{"a\nb"} }, "payload", "one non-empty line"},
		{"empty key", func(id *agentproto.Identity) { id.Key = []byte{} }, "key", "0 bytes"},
		{"short key", func(id *agentproto.Identity) { id.Key = id.Key[1:] }, "key", "31 bytes"},
		{"long key", func(id *agentproto.Identity) { id.Key = append(id.Key, 1) }, "key", "33 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := full()
			tt.edit(&id)
			err := Validate(id)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate: %v, want an *InvalidError for %s", err, tt.field)
			}
			if ie.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", ie.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		params string
		field  string
	}{
		{"clock only", `{"time_unix_nano":5}`, ""},
		{"unknown fields are ignored", `{"time_unix_nano":5,"later":true}`, ""},
		{"not JSON", `{"time_unix_nano":`, "params"},
		{"trailing data", `{"time_unix_nano":5} {}`, "params"},
		{"wrong type", `{"time_unix_nano":"now"}`, "params"},
		{"seed not base64", `{"time_unix_nano":5,"seed":"%%%"}`, "params"},
		{"empty seed", `{"time_unix_nano":5,"seed":""}`, "seed"},
		{"null params", `null`, "time_unix_nano"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.params))
			var ie *InvalidError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tt.field != "" && (!errors.As(err, &ie) || ie.Field != tt.field):
				t.Fatalf("Decode: %v, want an *InvalidError for %s", err, tt.field)
			}
		})
	}
}
