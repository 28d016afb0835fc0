// Package buildsandbox runs one image-build command (apt, npm install
// scripts, a user's --script) confined to the image's root filesystem, so
// that what the command runs as root cannot reach the host.
//
// Run starts the command through a re-execution of the current binary
// (/proc/self/exe) as the sandbox's init, in fresh mount, PID, IPC, UTS and
// cgroup namespaces. The init (Init, which every binary that builds images
// calls first thing in main when IsInit says so) makes the host's mounts
// slaves, binds the root onto itself without device files or set-user-ID,
// pivot_roots into it and detaches the old root, so no path leads back to
// the host's files. It then applies Plan: a new /proc for the PID
// namespace with the kernel's dangerous files masked or read-only, a
// read-only /sys, and a /dev on tmpfs holding only null, zero, full,
// random, urandom, tty, a private devpts and /dev/shm. Before starting the
// command it sets the hostname, drops every capability outside Kept from
// the bounding, effective, permitted, inheritable and ambient sets, sets
// no_new_privs and installs a small seccomp filter (Denied: no new user
// namespaces, keyrings, bpf, perf events, userfaultfd or io_uring, and no
// 32-bit system calls). It stays as PID 1, reaping orphans; when the command
// exits the init exits with its status and the kernel kills whatever the
// command left running in the namespace.
//
// The network namespace is the host's: apt and npm need the Debian mirror
// and the npm registry. Without CAP_NET_ADMIN, CAP_NET_RAW and
// CAP_NET_BIND_SERVICE a build can open ordinary connections but not
// reconfigure, sniff or take over privileged ports of the host's network.
//
// Everything here needs root.
package buildsandbox
