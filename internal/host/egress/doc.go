// Package egress owns what a VM's guest may reach outside its VM: the
// policy (nat, none, or an allowlist of domains, wildcards, addresses and
// ports, with named presets), its parsing and validation, and its
// enforcement on the host: per-VM nftables state in banger's inet table
// and the resolver on the bridge through which an allowlisted guest's DNS
// goes, which answers only allowed names and lets the answered addresses
// through for the record's TTL. Refused connections and names are counted
// per VM for `banger vm egress NAME --log`.
//
// Whatever a VM's policy, hostnet's rules still keep guests from each
// other, from the host's services and from private, link-local and
// metadata ranges: a policy can only narrow what NAT allows.
package egress
