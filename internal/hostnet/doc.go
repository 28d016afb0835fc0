// Package hostnet owns banger's host networking: the bridge and its gateway
// address, the TAP pool, the daemon's own nftables table (guest egress NAT,
// isolation), and lease arithmetic. Changes are planned as data and applied
// by one idempotent executor.
//
// # Shape
//
// Observe reads what the host has (State). Plan compares it with what the
// Config asks for and returns the Steps that are missing, in the order they
// must run; a satisfied Step is never planned, so Plan(cfg, Observe(...))
// after a successful Apply is empty. Executor.Apply is the only code that
// changes the host; every Step it runs is idempotent (check, act), so a
// plan interrupted by a crash can simply be planned and applied again.
// Setup and Teardown wrap observe, plan, apply and verify for `banger host
// setup|teardown` and for a root bangerd's own start; Pool hands TAPs to VMs.
//
// Everything acts on one network namespace: the daemon's own by default, or
// the one NewExecutor is given (tests create a throwaway namespace and never
// touch the machine's own).
//
// # Order
//
// Plan builds the bridge first, then the nftables table, then turns on IPv4
// forwarding, and creates TAPs last: isolation is in place before anything
// can be forwarded and before a guest can be attached.
//
// # nftables
//
// banger keeps its rules in a table of its own (Config.Table, "banger") of
// family inet, written through netlink (github.com/google/nftables, no nft
// binary). inet rather than ip because guests get IPv6 link-local addresses
// whether or not banger hands out IPv6: an ip-family table would leave the
// host's services reachable from guests over IPv6. NAT only needs IPv4 and
// matches `meta nfproto ipv4` explicitly. The table, as `nft list table inet
// banger` prints it for bridge banger0 and subnet 172.30.0.0/24:
//
//	table inet banger {
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr 172.30.0.0/24 oifname != "banger0" masquerade comment "banger:egress-nat"
//		}
//
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			oifname "banger0" ct state established,related accept comment "banger:replies-to-guests"
//			iifname "banger0" oifname "banger0" drop comment "banger:guest-to-guest"
//			iifname "banger0" oifname != "banger0" ip saddr 172.30.0.0/24 accept comment "banger:guest-egress"
//			oifname "banger0" drop comment "banger:inbound-to-guests"
//			iifname "banger0" drop comment "banger:guest-other"
//		}
//
//		chain input {
//			type filter hook input priority filter; policy accept;
//			iifname "banger0" ct state established,related accept comment "banger:replies-from-host"
//			iifname "banger0" icmp type echo-request accept comment "banger:guest-ping"
//			iifname "banger0" drop comment "banger:guest-to-host"
//		}
//	}
//
// (testdata/ruleset.nft is this listing, compared with what the kernel
// holds after Setup.) Guests reach the outside through masquerade; they cannot reach each other (at layer 2 because every
// pool TAP is an isolated bridge port, IFLA_BRPORT_ISOLATED; at layer 3
// because bridge-to-bridge forwarding is dropped), nor any host address
// except to ping the gateway; nothing outside can open connections to them.
// The host itself can: connections it opens to a guest go out through the
// output hook, and their replies are established. Chains have policy accept
// and every drop names the bridge, so the table never affects traffic that
// is not a guest's.
//
// Every rule carries a comment "banger:<name>" (nftables userdata); Observe
// reads the rules back with their expressions, and Plan replaces the whole
// table in one atomic netlink batch when anything differs.
//
// NAT is per subnet, not per VM: no rule names a VM, its address or its
// TAP, so deleting a VM never has to find "its" NAT rule, and a runtime that
// lost its network handles has nothing to tear down here: per-VM teardown is
// Pool.Release, which tolerates a TAP that is already gone. Leaks reports
// any rule in the table that Plan would not create.
//
// Teardown removes the TAPs, the bridge and the table but leaves
// net.ipv4.ip_forward as it is: other software on the host (container
// runtimes, VPNs) may rely on it, and banger cannot know whether it was on
// before. Forwarding is only ever turned on in the namespace the executor
// acts on.
package hostnet
