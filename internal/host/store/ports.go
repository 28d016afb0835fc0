package store

import (
	"context"
	"database/sql"
	"strconv"
)

// PublishedPort is a guest port of a VM published on the host's
// loopback (migration 0005).
type PublishedPort struct {
	VMID      string
	GuestPort int
	HostPort  int
}

// AddPort records a published port; a guest port already recorded for
// the VM, or a host port another row holds, is ErrConflict.
func (s *Store) AddPort(ctx context.Context, p PublishedPort) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO published_ports (vm_id, guest_port, host_port, created_at) VALUES (?, ?, ?, ?)`,
			p.VMID, p.GuestPort, p.HostPort, unixMilli(s.now()))
		return classify(err, "publishing guest port "+strconv.Itoa(p.GuestPort)+" of vm "+p.VMID)
	})
}

// RemovePort forgets a published port; ErrNotFound when it was not
// recorded.
func (s *Store) RemovePort(ctx context.Context, vmID string, guestPort int) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM published_ports WHERE vm_id = ? AND guest_port = ?`, vmID, guestPort)
		if err != nil {
			return classify(err, "removing guest port "+strconv.Itoa(guestPort)+" of vm "+vmID)
		}
		return requireOne(res, "published guest port "+strconv.Itoa(guestPort)+" of vm "+vmID)
	})
}

// Ports lists the published ports of vmID by guest port, or of every VM
// when vmID is "".
func (s *Store) Ports(ctx context.Context, vmID string) ([]PublishedPort, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT vm_id, guest_port, host_port FROM published_ports
		WHERE ? = '' OR vm_id = ? ORDER BY vm_id, guest_port`, vmID, vmID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PublishedPort
	for rows.Next() {
		var p PublishedPort
		if err := rows.Scan(&p.VMID, &p.GuestPort, &p.HostPort); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
