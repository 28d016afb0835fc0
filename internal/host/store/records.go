package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// VM is a persistent VM spec plus its last known runtime (both JSON).
type VM struct {
	ID      string
	Name    string
	ImageID string
	State   string
	Spec    string
	Runtime string
	// Workspace is what was last sent into the VM's workspace (JSON, ""
	// when nothing was); SetWorkspace writes it, UpdateVM leaves it.
	Workspace string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Lease is a VM's network address.
type Lease struct {
	IP        string
	VMID      string
	MAC       string
	TAP       string
	CreatedAt time.Time
}

// Session is a long-lived guest command's metadata (JSON in Meta).
type Session struct {
	ID        string
	VMID      string
	Name      string
	State     string
	Meta      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// classify maps SQLite constraint failures to ErrConflict so callers can
// tell "you asked for something that clashes" from an I/O failure.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "constraint failed") {
		return fmt.Errorf("%s: %w: %s", what, ErrConflict, msg)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func orJSON(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateLease records a VM's address.
func (s *Store) CreateLease(ctx context.Context, l Lease) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO network_leases (ip, vm_id, mac, tap, created_at) VALUES (?, ?, ?, ?, ?)`,
			l.IP, l.VMID, l.MAC, l.TAP, unixMilli(s.now()))
		return classify(err, "leasing "+l.IP)
	})
}

// ListLeases returns all leases by address.
func (s *Store) ListLeases(ctx context.Context) ([]Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ip, vm_id, mac, tap, created_at FROM network_leases ORDER BY ip`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var created int64
		if err := rows.Scan(&l.IP, &l.VMID, &l.MAC, &l.TAP, &created); err != nil {
			return nil, err
		}
		l.CreatedAt = fromMilli(created)
		out = append(out, l)
	}
	return out, rows.Err()
}

// CountSessions returns the number of sessions of a VM.
func (s *Store) CountSessions(ctx context.Context, vmID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE vm_id = ?`, vmID).Scan(&n)
	return n, err
}

// SetHostFact stores a fact about the host (JSON value) under key.
func (s *Store) SetHostFact(ctx context.Context, key, value string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO host_facts (key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			key, value, unixMilli(s.now()))
		return err
	})
}

// HostFact returns a stored fact and when it was recorded, or ErrNotFound.
func (s *Store) HostFact(ctx context.Context, key string) (string, time.Time, error) {
	var v string
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT value, updated_at FROM host_facts WHERE key = ?`, key).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, fmt.Errorf("host fact %q: %w", key, ErrNotFound)
	}
	return v, fromMilli(at), err
}

func requireOne(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
