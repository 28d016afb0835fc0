package api

import "time"

// Egress modes (EgressPolicy.Mode).
const (
	// EgressNAT: the guest reaches the internet through NAT (the default).
	EgressNAT = "nat"
	// EgressNone: the guest reaches nothing outside its VM.
	EgressNone = "none"
	// EgressAllow: the guest reaches only what EgressPolicy.Allow lists.
	EgressAllow = "allow"
)

// EgressPolicy is what a VM's guest may reach. Whatever the policy,
// guests never reach each other, the host's services, or private,
// link-local and metadata ranges (except network.allow_cidrs).
type EgressPolicy struct {
	Mode string `json:"mode"`
	// Allow lists what an EgressAllow guest may reach, each entry one of:
	// a domain name ("github.com"), a wildcard ("*.npmjs.org": its
	// subdomains, not itself), an IPv4 address or CIDR ("203.0.113.0/24"),
	// or a preset ("@agents", named in the config's egress.presets);
	// each optionally followed by one ":PORT" (every port when none is
	// given; repeat an entry for more ports). Domains are enforced by bangerd's resolver:
	// the guest's DNS goes to it, it answers only allowed names and lets
	// through, for the record's TTL, the addresses it answered.
	Allow []string `json:"allow,omitempty"`
}

// EgressDrop is a connection attempt an egress policy refused.
type EgressDrop struct {
	// Address and Port are where the guest tried to go; Proto is "tcp",
	// "udp" or "icmp".
	Address string `json:"address"`
	Port    int    `json:"port,omitempty"`
	Proto   string `json:"proto"`
	// Name is the domain the guest asked the resolver for, when it was a
	// refused name (Address is then empty).
	Name string `json:"name,omitempty"`
	// Count is how many times, Last the latest.
	Count int64     `json:"count"`
	Last  time.Time `json:"last"`
}

// EgressStatus answers GET /v1/vms/{name}/egress.
type EgressStatus struct {
	Policy EgressPolicy `json:"policy"`
	// Drops are the most recent refusals, newest first (with ?log=true).
	Drops []EgressDrop `json:"drops,omitempty"`
}

// PublishedPort is a VM's guest port published on the host's loopback:
// connections to Address:HostPort are forwarded to GuestPort inside the
// guest through the agent channel (not the network), so they work for a
// rootless daemon and with egress "none".
type PublishedPort struct {
	GuestPort int    `json:"guest_port"`
	HostPort  int    `json:"host_port"`
	Address   string `json:"address"` // "127.0.0.1"
	// Warning, in the answer to a publish only, is what a trial
	// connection through the running VM's agent found wrong (nothing
	// listens yet, an agent too old to relay), with the fix; the port is
	// published all the same.
	Warning string `json:"warning,omitempty"`
}

// PublishPortRequest asks to publish GuestPort; HostPort 0 picks a free
// port.
type PublishPortRequest struct {
	GuestPort int `json:"guest_port"`
	HostPort  int `json:"host_port,omitempty"`
}

// PortList answers GET /v1/vms/{name}/ports.
type PortList struct {
	Ports []PublishedPort `json:"ports"`
}
