package db

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// GitStorage is a go-git storage.Storer that keeps one bare repository in
// PostgreSQL: objects in git_objects, references in git_references. It runs its
// queries on q, so a storage built on a transaction makes every object and
// reference it writes part of that transaction.
//
// go-git's interfaces carry no context; the storage uses the one it was made
// with. A GitStorage is not safe for concurrent use: make one per transaction.
type GitStorage struct {
	ctx  context.Context
	q    Querier
	repo uuid.UUID
}

var _ storage.Storer = (*GitStorage)(nil)

// NewGitStorage returns the storage of repository repo, reached through q.
func NewGitStorage(ctx context.Context, q Querier, repo uuid.UUID) *GitStorage {
	return &GitStorage{ctx: ctx, q: q, repo: repo}
}

// InitRepository creates an empty bare repository whose HEAD points at branch.
func InitRepository(ctx context.Context, q Querier, repo uuid.UUID, branch string) (*GitStorage, error) {
	if _, err := q.Exec(ctx, `INSERT INTO git_repositories (id) VALUES ($1)`, repo); err != nil {
		return nil, wrap(err, "create git repository")
	}
	s := NewGitStorage(ctx, q, repo)
	head := plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch))
	if err := s.SetReference(head); err != nil {
		return nil, err
	}
	return s, nil
}

// DeleteRepository removes a repository with all its objects and references.
func DeleteRepository(ctx context.Context, q Querier, repo uuid.UUID) error {
	_, err := q.Exec(ctx, `DELETE FROM git_repositories WHERE id = $1`, repo)
	return wrap(err, "delete git repository")
}

// --- objects

func (s *GitStorage) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

func (s *GitStorage) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	switch o.Type() {
	case plumbing.CommitObject, plumbing.TreeObject, plumbing.BlobObject, plumbing.TagObject:
	default:
		return plumbing.ZeroHash, plumbing.ErrInvalidType
	}
	r, err := o.Reader()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer r.Close()
	content, err := io.ReadAll(r)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	h := o.Hash()
	_, err = s.q.Exec(s.ctx, `
		INSERT INTO git_objects (repository_id, hash, type, size, content)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (repository_id, hash) DO NOTHING`,
		s.repo, h[:], int16(o.Type()), int64(len(content)), content)
	if err != nil {
		return plumbing.ZeroHash, wrap(err, "store git object")
	}
	return h, nil
}

func (s *GitStorage) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	var typ int16
	var content []byte
	err := s.q.QueryRow(s.ctx, `SELECT type, content FROM git_objects WHERE repository_id = $1 AND hash = $2`,
		s.repo, h[:]).Scan(&typ, &content)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, plumbing.ErrObjectNotFound
	}
	if err != nil {
		return nil, wrap(err, "read git object")
	}
	if t != plumbing.AnyObject && plumbing.ObjectType(typ) != t {
		return nil, plumbing.ErrObjectNotFound
	}
	return memoryObject(plumbing.ObjectType(typ), content)
}

func memoryObject(t plumbing.ObjectType, content []byte) (plumbing.EncodedObject, error) {
	o := &plumbing.MemoryObject{}
	o.SetType(t)
	o.SetSize(int64(len(content)))
	if _, err := o.Write(content); err != nil {
		return nil, err
	}
	return o, nil
}

func (s *GitStorage) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	rows, err := s.q.Query(s.ctx, `
		SELECT type, content FROM git_objects
		WHERE repository_id = $1 AND ($2 = 0 OR type = $2)`, s.repo, int16(t))
	if err != nil {
		return nil, wrap(err, "list git objects")
	}
	var objs []plumbing.EncodedObject
	for rows.Next() {
		var typ int16
		var content []byte
		if err := rows.Scan(&typ, &content); err != nil {
			rows.Close()
			return nil, err
		}
		o, err := memoryObject(plumbing.ObjectType(typ), content)
		if err != nil {
			rows.Close()
			return nil, err
		}
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list git objects")
	}
	return storer.NewEncodedObjectSliceIter(objs), nil
}

func (s *GitStorage) HasEncodedObject(h plumbing.Hash) error {
	_, err := s.EncodedObjectSize(h)
	return err
}

func (s *GitStorage) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	var size int64
	err := s.q.QueryRow(s.ctx, `SELECT size FROM git_objects WHERE repository_id = $1 AND hash = $2`,
		s.repo, h[:]).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, plumbing.ErrObjectNotFound
	}
	return size, wrap(err, "read git object size")
}

func (s *GitStorage) AddAlternate(string) error {
	return errors.New("git storage in PostgreSQL does not support alternates")
}

// --- references

func (s *GitStorage) SetReference(ref *plumbing.Reference) error {
	_, err := s.q.Exec(s.ctx, `
		INSERT INTO git_references (repository_id, name, target) VALUES ($1, $2, $3)
		ON CONFLICT (repository_id, name) DO UPDATE SET target = EXCLUDED.target`,
		s.repo, ref.Name().String(), refTarget(ref))
	return wrap(err, "set git reference")
}

// CheckAndSetReference moves ref only if it still points where old says:
// a compare-and-swap in one UPDATE, so of two writers racing from the same
// old value exactly one wins and the other gets
// storage.ErrReferenceHasChanged. A nil old sets ref unconditionally; an old
// with a zero hash means "only if ref does not exist yet".
func (s *GitStorage) CheckAndSetReference(ref, old *plumbing.Reference) error {
	if old == nil {
		return s.SetReference(ref)
	}
	var tag interface{ RowsAffected() int64 }
	var err error
	if old.Type() == plumbing.HashReference && old.Hash().IsZero() {
		tag, err = s.q.Exec(s.ctx, `
			INSERT INTO git_references (repository_id, name, target) VALUES ($1, $2, $3)
			ON CONFLICT (repository_id, name) DO NOTHING`,
			s.repo, ref.Name().String(), refTarget(ref))
	} else {
		tag, err = s.q.Exec(s.ctx, `
			UPDATE git_references SET target = $3
			WHERE repository_id = $1 AND name = $2 AND target = $4`,
			s.repo, ref.Name().String(), refTarget(ref), refTarget(old))
	}
	if err != nil {
		return wrap(err, "move git reference")
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrReferenceHasChanged
	}
	return nil
}

func (s *GitStorage) Reference(name plumbing.ReferenceName) (*plumbing.Reference, error) {
	var target string
	err := s.q.QueryRow(s.ctx, `SELECT target FROM git_references WHERE repository_id = $1 AND name = $2`,
		s.repo, name.String()).Scan(&target)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, plumbing.ErrReferenceNotFound
	}
	if err != nil {
		return nil, wrap(err, "read git reference")
	}
	return plumbing.NewReferenceFromStrings(name.String(), target), nil
}

func (s *GitStorage) IterReferences() (storer.ReferenceIter, error) {
	rows, err := s.q.Query(s.ctx, `SELECT name, target FROM git_references WHERE repository_id = $1 ORDER BY name`, s.repo)
	if err != nil {
		return nil, wrap(err, "list git references")
	}
	refs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*plumbing.Reference, error) {
		var name, target string
		err := r.Scan(&name, &target)
		return plumbing.NewReferenceFromStrings(name, target), err
	})
	if err != nil {
		return nil, wrap(err, "list git references")
	}
	return storer.NewReferenceSliceIter(refs), nil
}

func (s *GitStorage) RemoveReference(name plumbing.ReferenceName) error {
	_, err := s.q.Exec(s.ctx, `DELETE FROM git_references WHERE repository_id = $1 AND name = $2`, s.repo, name.String())
	return wrap(err, "remove git reference")
}

func (s *GitStorage) CountLooseRefs() (int, error) {
	var n int
	err := s.q.QueryRow(s.ctx, `SELECT count(*) FROM git_references WHERE repository_id = $1`, s.repo).Scan(&n)
	return n, wrap(err, "count git references")
}

// PackRefs does nothing: references are rows, there is nothing to pack.
func (s *GitStorage) PackRefs() error { return nil }

func refTarget(ref *plumbing.Reference) string {
	if ref.Type() == plumbing.SymbolicReference {
		return "ref: " + ref.Target().String()
	}
	return ref.Hash().String()
}

// --- configuration, kept as the repository's git config file

func (s *GitStorage) Config() (*config.Config, error) {
	var raw []byte
	err := s.q.QueryRow(s.ctx, `SELECT config FROM git_repositories WHERE id = $1`, s.repo).Scan(&raw)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap(err, "read git config")
	}
	cfg := config.NewConfig()
	if len(raw) == 0 {
		cfg.Core.IsBare = true
		return cfg, nil
	}
	if err := cfg.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("parse git config: %w", err)
	}
	return cfg, nil
}

func (s *GitStorage) SetConfig(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	raw, err := cfg.Marshal()
	if err != nil {
		return err
	}
	_, err = s.q.Exec(s.ctx, `UPDATE git_repositories SET config = $2 WHERE id = $1`, s.repo, raw)
	return wrap(err, "write git config")
}

// --- parts of a repository a bare one does not have

// SetShallow is refused: repositories here always hold their full history.
func (s *GitStorage) SetShallow(commits []plumbing.Hash) error {
	if len(commits) == 0 {
		return nil
	}
	return errors.New("git storage in PostgreSQL keeps full history; shallow repositories are not supported")
}

func (s *GitStorage) Shallow() ([]plumbing.Hash, error) { return nil, nil }

// SetIndex is refused: the repositories are bare, there is no work tree.
func (s *GitStorage) SetIndex(*index.Index) error {
	return errors.New("git storage in PostgreSQL holds bare repositories: no index")
}

func (s *GitStorage) Index() (*index.Index, error) { return &index.Index{Version: 2}, nil }

func (s *GitStorage) Module(name string) (storage.Storer, error) {
	return nil, fmt.Errorf("git storage in PostgreSQL does not support submodules (%q)", name)
}
