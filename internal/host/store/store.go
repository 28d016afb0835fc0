// Package store owns banger's SQLite database: opening it with the
// connection profile every pooled connection needs, the embedded numbered
// migrations, the write mutex that serialises mutations, and the typed
// records (images, VMs, leases, sessions, operations, host facts).
//
// Only bangerd opens the store. Everything else reaches state through the
// daemon's API.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// Pragmas are applied by the driver to every new pooled connection, because
// they are connection-scoped: setting them once on one connection leaves the
// others with SQLite's defaults (no foreign keys, no busy timeout).
//
// cache_size bounds each connection's page cache to 1 MiB (SQLite's
// default is 2 MiB): the database is a few MiB at most (operations are
// pruned, PruneOperations), and eight pooled connections each filling a
// default cache would grow the daemon's memory long after a busy spell.
var Pragmas = []string{
	"journal_mode(WAL)",
	"busy_timeout(10000)",
	"foreign_keys(1)",
	"synchronous(NORMAL)",
	"cache_size(-1024)",
}

// Store is the open database. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
	// writeMu serialises mutations. WAL lets readers run beside one writer;
	// serialising writers in-process means they never race for SQLite's
	// write lock and so never see SQLITE_BUSY.
	writeMu sync.Mutex
	now     func() time.Time
}

// DSN returns the driver connection string for path, carrying the
// connection profile.
func DSN(path string) string {
	q := url.Values{}
	for _, p := range Pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &Store{db: db, path: path, now: time.Now}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, s.full(err))
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes the handle for tests in this module that inspect the schema.
func (s *Store) DB() *sql.DB { return s.db }

// write runs fn in a transaction under the write mutex. A write that
// finds the filesystem full releases the store's reserve (ReserveBytes)
// and runs fn once more; if that fails too, the error says the
// filesystem is full (see full). After a write that succeeds, a missing
// reserve is made again when there is room.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.writeTx(ctx, fn)
	if err != nil && isFull(err) && s.releaseReserve() {
		err = s.writeTx(ctx, fn)
	}
	if err == nil {
		s.keepReserve()
	}
	return s.full(err)
}

// writeTx runs fn in one transaction, rolled back when fn fails.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ErrNotFound is returned (wrapped) when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when a write breaks a uniqueness or
// foreign-key constraint.
var ErrConflict = errors.New("conflict")

func unixMilli(t time.Time) int64 { return t.UnixMilli() }

func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
