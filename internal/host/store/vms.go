package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// CreateVM inserts a VM record.
func (s *Store) CreateVM(ctx context.Context, vm VM) error {
	now := s.now()
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO vms (id, name, image_id, state, spec, runtime, workspace, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			vm.ID, vm.Name, vm.ImageID, vm.State, orJSON(vm.Spec), orJSON(vm.Runtime), vm.Workspace, unixMilli(now), unixMilli(now))
		return classify(err, "creating vm "+vm.Name)
	})
}

// CreateVMWithLease inserts a VM and its address in one transaction, so a
// crash never leaves one without the other.
func (s *Store) CreateVMWithLease(ctx context.Context, vm *VM, l Lease) error {
	now := s.now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vms (id, name, image_id, state, spec, runtime, workspace, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			vm.ID, vm.Name, vm.ImageID, vm.State, orJSON(vm.Spec), orJSON(vm.Runtime), vm.Workspace, unixMilli(now), unixMilli(now)); err != nil {
			return classify(err, "creating vm "+vm.Name)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO network_leases (ip, vm_id, mac, tap, created_at) VALUES (?, ?, ?, ?, ?)`,
			l.IP, vm.ID, l.MAC, l.TAP, unixMilli(now))
		return classify(err, "leasing "+l.IP)
	})
	if err == nil {
		// What a read would return: the stored times, at their precision.
		vm.CreatedAt = fromMilli(unixMilli(now))
		vm.UpdatedAt = vm.CreatedAt
	}
	return err
}

// UpdateVM writes a VM's state, spec and runtime.
func (s *Store) UpdateVM(ctx context.Context, vm VM) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vms SET state = ?, spec = ?, runtime = ?, updated_at = ? WHERE id = ?`,
			vm.State, orJSON(vm.Spec), orJSON(vm.Runtime), unixMilli(s.now()), vm.ID)
		if err != nil {
			return classify(err, "updating vm "+vm.Name)
		}
		return requireOne(res, "vm "+vm.Name)
	})
}

// SetWorkspace records what was last sent into a VM's workspace (JSON).
func (s *Store) SetWorkspace(ctx context.Context, vmID, workspace string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vms SET workspace = ?, updated_at = ? WHERE id = ?`,
			workspace, unixMilli(s.now()), vmID)
		if err != nil {
			return classify(err, "recording the workspace of vm "+vmID)
		}
		return requireOne(res, "vm "+vmID)
	})
}

// SetLeaseTAP records which TAP device carries a VM's address ("" when
// none).
func (s *Store) SetLeaseTAP(ctx context.Context, vmID, tap string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE network_leases SET tap = ? WHERE vm_id = ?`, tap, vmID)
		if err != nil {
			return classify(err, "recording tap "+tap)
		}
		return requireOne(res, "lease of vm "+vmID)
	})
}

const vmColumns = `id, name, image_id, state, spec, runtime, workspace, created_at, updated_at`

func scanVM(row scanner) (VM, error) {
	var vm VM
	var created, updated int64
	err := row.Scan(&vm.ID, &vm.Name, &vm.ImageID, &vm.State, &vm.Spec, &vm.Runtime, &vm.Workspace, &created, &updated)
	vm.CreatedAt, vm.UpdatedAt = fromMilli(created), fromMilli(updated)
	return vm, err
}

// GetVM returns the VM with that name or id, or ErrNotFound.
func (s *Store) GetVM(ctx context.Context, nameOrID string) (VM, error) {
	vm, err := scanVM(s.db.QueryRowContext(ctx, `SELECT `+vmColumns+` FROM vms WHERE name = ? OR id = ?`, nameOrID, nameOrID))
	if errors.Is(err, sql.ErrNoRows) {
		return VM{}, fmt.Errorf("vm %q: %w", nameOrID, ErrNotFound)
	}
	return vm, err
}

// GetVMByName returns the VM with that name, or ErrNotFound.
func (s *Store) GetVMByName(ctx context.Context, name string) (VM, error) { return s.GetVM(ctx, name) }

// ListVMs returns every VM by name.
func (s *Store) ListVMs(ctx context.Context) ([]VM, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+vmColumns+` FROM vms ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []VM
	for rows.Next() {
		vm, err := scanVM(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, vm)
	}
	return out, rows.Err()
}

// VMNameTaken reports whether a VM already has name; the name generator
// uses it to stay unique against the store.
func (s *Store) VMNameTaken(ctx context.Context, name string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM vms WHERE name = ?`, name).Scan(&n)
	return n > 0, err
}

// CountVMs returns the number of VM records.
func (s *Store) CountVMs(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM vms`).Scan(&n)
	return n, err
}

// DeleteVM removes a VM; its lease and sessions go with it.
func (s *Store) DeleteVM(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM vms WHERE id = ?`, id)
		if err != nil {
			return classify(err, "deleting vm "+id)
		}
		return requireOne(res, "vm "+id)
	})
}

// LeaseOf returns a VM's lease, or ErrNotFound.
func (s *Store) LeaseOf(ctx context.Context, vmID string) (Lease, error) {
	var l Lease
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT ip, vm_id, mac, tap, created_at FROM network_leases WHERE vm_id = ?`, vmID).
		Scan(&l.IP, &l.VMID, &l.MAC, &l.TAP, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("lease of vm %s: %w", vmID, ErrNotFound)
	}
	l.CreatedAt = fromMilli(created)
	return l, err
}
