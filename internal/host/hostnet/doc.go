// Package hostnet owns banger's host networking: the bridge and its gateway
// address, the TAP pool, the daemon's own nftables tables (guest egress
// NAT, isolation from each other, the host, private and metadata
// addresses and other users; per-TAP anti-spoofing), and lease
// arithmetic. Changes are planned as data and applied by one idempotent
// executor.
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
// Plan builds the bridge first, then the nftables tables (anti-spoofing,
// then NAT and isolation), then turns on IPv4 forwarding, and creates TAPs
// last: isolation is in place before anything can be forwarded and before
// a guest can be attached.
//
// # nftables
//
// banger keeps its rules in two tables of its own, both named Config.Table
// ("banger") and written through netlink (github.com/google/nftables, no
// nft binary): one of family inet for NAT and isolation, one of family
// bridge for anti-spoofing. inet rather than ip because guests get IPv6
// link-local addresses whether or not banger hands out IPv6: an ip-family
// table would leave the host's services reachable from guests over IPv6.
// NAT only needs IPv4 and matches `meta nfproto ipv4` explicitly. The
// tables, as `nft list table inet banger` and `nft list table bridge
// banger` print them for bridge banger0, subnet 172.30.0.0/24, the
// resolver 192.168.1.53, network.allow_cidrs = ["192.168.7.0/24"] and a
// daemon owned by uid 4242 (the guest-to-private rules are abridged):
//
//	table inet banger {
//		set egress-cidrs {
//			type ipv4_addr . ipv4_addr . inet_service
//			flags interval
//		}
//		set egress-drops {
//			type ipv4_addr . ipv4_addr . inet_proto . inet_service
//			size 4096
//			flags dynamic,timeout
//			timeout 1h
//		}
//		set egress-guests { type ipv4_addr; }
//		set egress-names { type ipv4_addr . ipv4_addr . inet_service; flags timeout; }
//		set egress-names-any { type ipv4_addr . ipv4_addr; flags timeout; }
//
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			iifname "banger0" ip saddr @egress-guests udp dport 53 dnat ip to 172.30.0.1:53 comment "banger:egress-dns"
//			iifname "banger0" ip saddr @egress-guests tcp dport 53 dnat ip to 172.30.0.1:53 comment "banger:egress-dns"
//		}
//
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr 172.30.0.0/24 oifname != "banger0" masquerade comment "banger:egress-nat"
//		}
//
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			oifname "banger0" ct state established,related accept comment "banger:replies-to-guests"
//			iifname "banger0" oifname "banger0" drop comment "banger:guest-to-guest"
//			iifname "banger0" ip saddr @egress-guests jump egress comment "banger:egress-restricted"
//			iifname "banger0" ip daddr 192.168.1.53 udp dport 53 accept comment "banger:guest-dns"
//			iifname "banger0" ip daddr 192.168.1.53 tcp dport 53 accept comment "banger:guest-dns"
//			iifname "banger0" ip saddr 172.30.0.0/24 ip daddr 192.168.7.0/24 accept comment "banger:guest-allowed"
//			iifname "banger0" ip daddr 0.0.0.0/8 drop comment "banger:guest-to-private"
//			iifname "banger0" ip daddr 10.0.0.0/8 drop comment "banger:guest-to-private"
//			... 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/4 ...
//			iifname "banger0" ip daddr 240.0.0.0/4 drop comment "banger:guest-to-private"
//			iifname "banger0" oifname != "banger0" ip saddr 172.30.0.0/24 accept comment "banger:guest-egress"
//			oifname "banger0" drop comment "banger:inbound-to-guests"
//			iifname "banger0" drop comment "banger:guest-other"
//		}
//
//		chain input {
//			type filter hook input priority filter; policy accept;
//			iifname "banger0" ct state established,related accept comment "banger:replies-from-host"
//			iifname "banger0" icmp type echo-request accept comment "banger:guest-ping"
//			iifname "banger0" ip saddr @egress-guests ip daddr 172.30.0.1 udp dport 53 accept comment "banger:egress-resolver"
//			iifname "banger0" ip saddr @egress-guests ip daddr 172.30.0.1 tcp dport 53 accept comment "banger:egress-resolver"
//			iifname "banger0" ip daddr 192.168.1.53 udp dport 53 accept comment "banger:guest-dns"
//			iifname "banger0" ip daddr 192.168.1.53 tcp dport 53 accept comment "banger:guest-dns"
//			iifname "banger0" drop comment "banger:guest-to-host"
//		}
//
//		chain output {
//			type filter hook output priority filter; policy accept;
//			oifname "banger0" ct state ! established,related meta skuid != 4242 meta skuid != 0 drop comment "banger:owner-only"
//		}
//
//		chain egress {
//			ip daddr 192.168.7.0/24 goto egress-policy comment "banger:egress-allowed-cidr"
//			ip daddr 0.0.0.0/8 drop comment "banger:egress-to-private"
//			... the rest of BlockedPrefixes, each dropped ...
//			goto egress-policy comment "banger:egress-policy"
//		}
//
//		chain egress-policy {
//			ip saddr . ip daddr . udp dport @egress-names accept comment "banger:egress-name"
//			ip saddr . ip daddr . udp dport @egress-cidrs accept comment "banger:egress-cidr"
//			ip saddr . ip daddr . tcp dport @egress-names accept comment "banger:egress-name"
//			ip saddr . ip daddr . tcp dport @egress-cidrs accept comment "banger:egress-cidr"
//			ip saddr . ip daddr @egress-names-any accept comment "banger:egress-name-any"
//			update @egress-drops { ip saddr . ip daddr . meta l4proto . udp dport counter } drop comment "banger:egress-refused"
//			update @egress-drops { ip saddr . ip daddr . meta l4proto . tcp dport counter } drop comment "banger:egress-refused"
//			update @egress-drops { ip saddr . ip daddr . meta l4proto . 0 counter } drop comment "banger:egress-refused"
//			drop comment "banger:egress-refused-uncounted"
//		}
//	}
//	table bridge banger {
//		set guest-addrs {
//			type ifname . ether_addr . ipv4_addr
//			elements = { "tap-pool-0" . 02:b4:ac:1e:00:02 . 172.30.0.2,
//				     "tap-pool-1" . 02:b4:ac:1e:00:03 . 172.30.0.3,
//				     "tap-pool-2" . 02:b4:ac:1e:00:04 . 172.30.0.4 }
//		}
//
//		chain prerouting {
//			type filter hook prerouting priority filter; policy accept;
//			iifname "tap-pool-*" iifname . ether saddr . ip saddr @guest-addrs accept comment "banger:guest-ipv4"
//			iifname "tap-pool-*" arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . ether saddr . arp saddr ip @guest-addrs iifname . arp saddr ether . arp saddr ip @guest-addrs accept comment "banger:guest-arp"
//			iifname "tap-pool-*" drop comment "banger:guest-spoof"
//		}
//	}
//
// (testdata/ruleset.nft is this listing in full, compared with what the
// kernel holds after Setup.)
//
// What a guest reaches: the outside through masquerade; its resolvers
// (Config.DNS, the host's non-loopback nameservers, which guests are
// given on the kernel command line) on udp and tcp port 53 only, also
// where they are private or the host's own; destinations in
// Config.AllowCIDRs (network.allow_cidrs). Nothing else that is private
// (10/8, 172.16/12, 192.168/16), CGNAT (100.64/10), link-local
// (169.254/16, with the cloud metadata service 169.254.169.254),
// loopback, "this network" (0/8), multicast or reserved and broadcast
// (224/4, 240/4): guest-to-private drops it, so the host's LAN and VPN
// are out of reach. Guests cannot reach each other (at layer 2 because
// every pool TAP is an isolated bridge port, IFLA_BRPORT_ISOLATED; at
// layer 3 because bridge-to-bridge forwarding is dropped), nor any host
// address except to ping the gateway; nothing outside can open
// connections to them. Guests get no IPv6: the bridge table drops every
// frame a guest sends that is neither IPv4 nor ARP, and the inet table
// would drop forwarded or host-bound IPv6 from the bridge anyway.
//
// Egress policies (package egress) narrow this per guest. A guest whose
// address is in egress-guests (policy none or an allowlist) has its DNS,
// to any address, redirected to the resolver bangerd runs on the gateway
// (Config.ResolverPort), and forward sends it to chain egress right
// after guest-to-guest, ahead of everything that accepts: the blocked
// ranges stay dropped (network.allow_cidrs go on to the policy like any
// other address), and egress-policy accepts only (guest . address .
// port) in egress-names or egress-cidrs, or (guest . address) in
// egress-names-any; the rest is counted in egress-drops (a packet counter
// per guest, address, protocol and port, forgotten an hour after its last
// packet; when it is full, uncounted) and dropped. The resolver fills egress-names(-any) with the
// addresses it answers for allowed names, each with the record's TTL;
// egress-cidrs holds the allowlist's addresses and CIDRs as ranges
// (interval sets of concatenations: kernel 5.6 or later). Guests not in
// egress-guests (nat, the default) never reach these chains. Plan
// compares only the sets' declarations, so their elements, which belong
// to package egress (Executor.Egress), never make the table differ; a
// table rewrite empties them, and the daemon then has egress write them
// again (Enforcer.Resync).
//
// Anti-spoofing: the bridge table sees each frame a guest sends before
// the bridge learns its source MAC and before the host reads it. A frame
// from a pool TAP passes only if it is IPv4 whose (TAP, source MAC,
// source address) is in guest-addrs, or Ethernet/IPv4 ARP whose (TAP,
// source MAC, sender address) and (TAP, sender MAC, sender address)
// both are; everything else from a pool TAP is dropped, IPv6 included.
// A binding follows from the TAP's name: tap-pool-<n> carries the n-th
// guest address and its MAC (BindingFor, TAPFor, MAC), and Pool.Acquire
// hands a VM the TAP of its leased address. guest-addrs holds the
// binding of every pool TAP that exists: Plan and Pool bind a TAP in the
// step before they create it and unbind it when they delete it (Bind,
// Unbind), and Plan drops bindings of TAPs that are gone. Creating and
// deleting TAPs takes the same privilege as writing nftables, so a
// rootless bangerd (which may do neither) works with the TAPs and
// bindings `sudo banger host setup` made; handing TAPs to VMs, releasing
// them and a daemon restart change no binding (there is nothing to
// re-establish). One ARP reply can no longer move another VM's address,
// and a guest cannot send from another VM's MAC, which would make the
// bridge deliver that VM's frames to it.
//
// Only the daemon's owner reaches guests: the output chain drops every
// packet to the bridge that is not part of an established connection and
// comes from a socket of any user but Config.OwnerUID (the daemon's user,
// or the user `banger host setup --user` set up for) and root. Root is
// let through on purpose: root can rewrite these tables anyway, so
// refusing it would protect nothing. This is what keeps guest services
// that listen on every address (the agents image's unauthenticated
// `opencode serve --hostname 0.0.0.0` on port 4096) to the owner. Packets
// the kernel makes without a socket (RSTs, ICMP errors) have no skuid
// and pass. The host itself opens connections to guests through the
// output hook, and their replies are established. Chains have policy
// accept and every drop names the bridge or a pool TAP, so the tables
// never affect traffic that is not a guest's.
//
// Every rule carries a comment "banger:<name>" (nftables userdata); Observe
// reads the rules and the set's elements back, and Plan replaces a whole
// table in one atomic netlink batch when its chains, rules or sets differ
// (the bridge table first, then its bindings again). Allowlist and resolver changes are applied by
// `sudo banger host setup` or, for a root bangerd, on its next VM start.
//
// NAT and isolation are per subnet, not per VM: no rule names a VM, and a
// binding belongs to a TAP whether it is leased or not, so deleting a VM
// never has to find "its" rule, and a runtime that
// lost its network handles has nothing to tear down here: per-VM teardown is
// Pool.Release, which tolerates a TAP that is already gone. Leaks reports
// any chain, rule, set or binding in either table that Plan would not
// create.
//
// Teardown removes the TAPs, the bridge and both tables but leaves
// net.ipv4.ip_forward as it is: other software on the host (container
// runtimes, VPNs) may rely on it, and banger cannot know whether it was on
// before. Forwarding is only ever turned on in the namespace the executor
// acts on.
package hostnet
