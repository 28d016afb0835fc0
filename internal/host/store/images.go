package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Image is a registered image with its artifacts. Manifest holds its JSON
// metadata (owned by package image).
type Image struct {
	ID          string
	Name        string
	ParentID    string
	State       string
	Distro      string
	Fingerprint string
	Manifest    string
	Artifacts   []Artifact
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Artifact is one file (or tree) of an image's boot set.
type Artifact struct {
	Kind   string
	Path   string
	SHA256 string
	Size   int64
}

// CreateImage inserts an image and its artifacts in one transaction.
func (s *Store) CreateImage(ctx context.Context, img Image) error {
	now := s.now()
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO images
			(id, name, parent_id, state, distro, fingerprint, manifest, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			img.ID, img.Name, nullable(img.ParentID), img.State, img.Distro, img.Fingerprint, orJSON(img.Manifest),
			unixMilli(now), unixMilli(now))
		if err != nil {
			return classify(err, "creating image "+img.Name)
		}
		return insertArtifacts(ctx, tx, img.ID, img.Artifacts)
	})
}

func insertArtifacts(ctx context.Context, tx *sql.Tx, id string, arts []Artifact) error {
	for _, a := range arts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO image_artifacts (image_id, kind, path, sha256, size) VALUES (?, ?, ?, ?, ?)`,
			id, a.Kind, a.Path, a.SHA256, a.Size); err != nil {
			return classify(err, "recording artifact "+a.Kind)
		}
	}
	return nil
}

// UpdateImage replaces an image's state, fingerprint, manifest and
// artifacts.
func (s *Store) UpdateImage(ctx context.Context, img Image) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE images SET state = ?, fingerprint = ?, manifest = ?, distro = ?, updated_at = ?
			WHERE id = ?`, img.State, img.Fingerprint, orJSON(img.Manifest), img.Distro, unixMilli(s.now()), img.ID)
		if err != nil {
			return classify(err, "updating image "+img.Name)
		}
		if err := requireOne(res, "image "+img.Name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM image_artifacts WHERE image_id = ?`, img.ID); err != nil {
			return err
		}
		return insertArtifacts(ctx, tx, img.ID, img.Artifacts)
	})
}

// DeleteImage removes an image; it fails with ErrConflict while a VM or a
// child image still refers to it.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM images WHERE id = ?`, id)
		if err != nil {
			return classify(err, "deleting image "+id)
		}
		return requireOne(res, "image "+id)
	})
}

const imageColumns = `id, name, COALESCE(parent_id, ''), state, distro, fingerprint, manifest, created_at, updated_at`

func (s *Store) scanImages(ctx context.Context, where string, args ...any) ([]Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+imageColumns+` FROM images `+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, err
	}
	var out []Image
	for rows.Next() {
		var img Image
		var created, updated int64
		if err := rows.Scan(&img.ID, &img.Name, &img.ParentID, &img.State, &img.Distro, &img.Fingerprint, &img.Manifest,
			&created, &updated); err != nil {
			rows.Close()
			return nil, err
		}
		img.CreatedAt, img.UpdatedAt = fromMilli(created), fromMilli(updated)
		out = append(out, img)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		arts, err := s.artifacts(ctx, out[i].ID)
		if err != nil {
			return nil, err
		}
		out[i].Artifacts = arts
	}
	return out, nil
}

func (s *Store) artifacts(ctx context.Context, id string) ([]Artifact, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, path, sha256, size FROM image_artifacts WHERE image_id = ? ORDER BY kind`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		var a Artifact
		if err := rows.Scan(&a.Kind, &a.Path, &a.SHA256, &a.Size); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ListImages returns all images by name, with artifacts.
func (s *Store) ListImages(ctx context.Context) ([]Image, error) {
	return s.scanImages(ctx, "")
}

// GetImage returns the image with that name or id, or ErrNotFound.
func (s *Store) GetImage(ctx context.Context, nameOrID string) (Image, error) {
	imgs, err := s.scanImages(ctx, "WHERE name = ? OR id = ?", nameOrID, nameOrID)
	if err != nil {
		return Image{}, err
	}
	if len(imgs) == 0 {
		return Image{}, fmt.Errorf("image %q: %w", nameOrID, ErrNotFound)
	}
	return imgs[0], nil
}

// ImageNameTaken reports whether an image already has name.
func (s *Store) ImageNameTaken(ctx context.Context, name string) (bool, error) {
	_, err := s.GetImage(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// VMsUsingImage returns the names of the VMs built from the image.
func (s *Store) VMsUsingImage(ctx context.Context, imageID string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM vms WHERE image_id = ? ORDER BY name`, imageID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
