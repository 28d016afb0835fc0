package store

import (
	"context"
	"database/sql"
)

// PruneOperations deletes finished operations beyond the newest keep and
// returns how many it deleted. Running operations are never deleted.
func (s *Store) PruneOperations(ctx context.Context, keep int) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM operations WHERE finished_at IS NOT NULL AND id NOT IN
			(SELECT id FROM operations ORDER BY created_at DESC LIMIT ?)`, keep)
		if err != nil {
			return classify(err, "pruning operations")
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
