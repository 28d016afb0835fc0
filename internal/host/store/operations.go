package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bangerdev/banger/api"
)

// SaveOperation inserts or replaces an operation's whole record. The
// operations manager calls it at every stage change, so the store always
// holds the latest known state.
func (s *Store) SaveOperation(ctx context.Context, op api.Operation) error {
	stages, err := json.Marshal(op.Stages)
	if err != nil {
		return err
	}
	var result any
	if len(op.Result) > 0 {
		result = string(op.Result)
	}
	var code, msg, field, allowed string
	if op.Error != nil {
		code, msg, field, allowed = string(op.Error.Code), op.Error.Message, op.Error.Field, op.Error.Allowed
	}
	var finished any
	if !op.FinishedAt.IsZero() {
		finished = unixMilli(op.FinishedAt)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO operations
			(id, kind, target, state, current_stage, stages, result, error_code, error_message, error_field, error_allowed,
				created_at, updated_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, current_stage = excluded.current_stage,
				stages = excluded.stages, result = excluded.result, error_code = excluded.error_code,
				error_message = excluded.error_message, error_field = excluded.error_field, error_allowed = excluded.error_allowed,
				updated_at = excluded.updated_at, finished_at = excluded.finished_at`,
			op.ID, op.Kind, op.Target, string(op.State), op.CurrentStage, string(stages), result, code, msg, field, allowed,
			unixMilli(op.CreatedAt), unixMilli(op.UpdatedAt), finished)
		return classify(err, "saving operation "+op.ID)
	})
}

const operationColumns = `id, kind, target, state, current_stage, stages, result, error_code, error_message,
	error_field, error_allowed, created_at, updated_at, finished_at`

type scanner interface{ Scan(...any) error }

func scanOperation(row scanner) (api.Operation, error) {
	var op api.Operation
	var state, stages, code, msg, field, allowed string
	var result sql.NullString
	var created, updated int64
	var finished sql.NullInt64
	if err := row.Scan(&op.ID, &op.Kind, &op.Target, &state, &op.CurrentStage, &stages, &result, &code, &msg, &field, &allowed,
		&created, &updated, &finished); err != nil {
		return op, err
	}
	op.State = api.OperationState(state)
	if err := json.Unmarshal([]byte(stages), &op.Stages); err != nil {
		return op, fmt.Errorf("operation %s: corrupt stages: %w", op.ID, err)
	}
	if result.Valid {
		op.Result = json.RawMessage(result.String)
	}
	if code != "" {
		op.Error = &api.Error{Code: api.Code(code), Message: msg, Field: field, Allowed: allowed}
	}
	op.CreatedAt, op.UpdatedAt, op.FinishedAt = fromMilli(created), fromMilli(updated), fromMilli(finished.Int64)
	return op, nil
}

// GetOperation returns one operation, or ErrNotFound.
func (s *Store) GetOperation(ctx context.Context, id string) (api.Operation, error) {
	op, err := scanOperation(s.db.QueryRowContext(ctx, `SELECT `+operationColumns+` FROM operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return op, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	return op, err
}

// ListOperations returns the newest operations first, at most limit.
func (s *Store) ListOperations(ctx context.Context, limit int) ([]api.Operation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+operationColumns+` FROM operations
		ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.Operation
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, rows.Err()
}

// FailUnfinished marks every running operation failed with reason; the
// daemon calls it at start, when no operation can still be running. It
// returns the ids it changed.
func (s *Store) FailUnfinished(ctx context.Context, reason string, at time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+operationColumns+` FROM operations WHERE state = ?`, string(api.OperationRunning))
	if err != nil {
		return nil, err
	}
	var ops []api.Operation
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		ops = append(ops, op)
	}
	rows.Close()
	var ids []string
	for _, op := range ops {
		for i := range op.Stages {
			if op.Stages[i].FinishedAt.IsZero() {
				op.Stages[i].FinishedAt = at
				op.Stages[i].Duration = api.Duration(at.Sub(op.Stages[i].StartedAt))
				op.Stages[i].Detail = "interrupted"
			}
		}
		op.State = api.OperationFailed
		op.Error = &api.Error{Code: api.CodeUnavailable, Message: reason}
		op.UpdatedAt, op.FinishedAt = at, at
		if err := s.SaveOperation(ctx, op); err != nil {
			return ids, err
		}
		ids = append(ids, op.ID)
	}
	return ids, nil
}
