package store

import (
	"context"
	"database/sql"
)

// PutSession inserts a session or replaces what is recorded for its id.
// The name is unique per VM: an unnamed session is recorded under its id.
func (s *Store) PutSession(ctx context.Context, ses Session) error {
	now := unixMilli(s.now())
	if ses.Name == "" {
		ses.Name = ses.ID
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, vm_id, name, state, meta, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (vm_id, id) DO UPDATE SET name = excluded.name, state = excluded.state, meta = excluded.meta, updated_at = excluded.updated_at`,
			ses.ID, ses.VMID, ses.Name, ses.State, orJSON(ses.Meta), now, now)
		return classify(err, "recording session "+ses.ID)
	})
}

// ListSessions returns a VM's sessions, oldest first.
func (s *Store) ListSessions(ctx context.Context, vmID string) ([]Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, vm_id, name, state, meta, created_at, updated_at
		FROM sessions WHERE vm_id = ? ORDER BY created_at, id`, vmID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var ses Session
		var created, updated int64
		if err := rows.Scan(&ses.ID, &ses.VMID, &ses.Name, &ses.State, &ses.Meta, &created, &updated); err != nil {
			return nil, err
		}
		ses.CreatedAt, ses.UpdatedAt = fromMilli(created), fromMilli(updated)
		out = append(out, ses)
	}
	return out, rows.Err()
}

// DeleteSession forgets a VM's session.
func (s *Store) DeleteSession(ctx context.Context, vmID, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE vm_id = ? AND id = ?`, vmID, id)
		return classify(err, "deleting session "+id)
	})
}

// RunningSessions counts a VM's sessions recorded as running.
func (s *Store) RunningSessions(ctx context.Context, vmID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE vm_id = ? AND state = 'running'`, vmID).Scan(&n)
	return n, err
}
