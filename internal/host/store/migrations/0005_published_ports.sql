-- Guest ports published on the host's loopback (`banger vm port`): one row
-- per VM and guest port; bangerd reopens a listener for each at start.
-- The row goes with its VM (ON DELETE CASCADE); a host port is unique
-- across VMs.
CREATE TABLE published_ports (
    vm_id      TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    guest_port INTEGER NOT NULL,
    host_port  INTEGER NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (vm_id, guest_port)
);
