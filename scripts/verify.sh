#!/usr/bin/env bash
# Reports leaked banger resources (TAPs, NAT rules, hypervisor processes,
# sockets, disks) through the daemon; exits non-zero when anything leaked.
# Idle tap-pool-N devices are pool capacity, not leaks.
set -euo pipefail
exec "${BANGER:-banger}" verify "$@"
