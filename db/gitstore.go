package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
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
	// written are the objects this storage wrote, up to maxWrittenBytes of
	// content, read back without a query: a commit writes a blob, a tree
	// and the commit, then reads them (the new project's code, the commit's
	// log entry). In a transaction of InTx the writes themselves are queued
	// to go with its next statement (later), not a round trip each.
	written      map[plumbing.Hash]writtenObject
	writtenBytes int
}

type writtenObject struct {
	typ     plumbing.ObjectType
	content []byte
}

// maxWrittenBytes bounds what a storage keeps of the objects it wrote, and
// queues: a commit of a few scripts, not a pushed packfile.
const maxWrittenBytes = 1 << 20

var (
	_ storage.Storer        = (*GitStorage)(nil)
	_ storer.PackfileWriter = (*GitStorage)(nil)
)

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
	const insert = `
		INSERT INTO git_objects (repository_id, hash, type, size, content)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (repository_id, hash) DO NOTHING`
	args := []any{s.repo, h[:], int16(o.Type()), int64(len(content)), content}
	if s.writtenBytes+len(content) > maxWrittenBytes {
		// Past the bound (a pushed packfile), each object goes at once, so
		// that neither the queue nor the memory holds a whole push.
		if _, err := s.q.Exec(s.ctx, insert, args...); err != nil {
			return plumbing.ZeroHash, wrap(err, "store git object")
		}
		return h, nil
	}
	if err := laterAs(s.ctx, s.q, "store git object", insert, args...); err != nil {
		return plumbing.ZeroHash, wrap(err, "store git object")
	}
	if s.written == nil {
		s.written = map[plumbing.Hash]writtenObject{}
	}
	s.written[h] = writtenObject{o.Type(), content}
	s.writtenBytes += len(content)
	return h, nil
}

func (s *GitStorage) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if w, ok := s.written[h]; ok {
		if t != plumbing.AnyObject && w.typ != t {
			return nil, plumbing.ErrObjectNotFound
		}
		return memoryObject(w.typ, w.content)
	}
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
	var typ *int16 // NULL: any type
	if t != plumbing.AnyObject {
		typ = new(int16(t))
	}
	rows, err := s.q.Query(s.ctx, `
		SELECT type, content FROM git_objects
		WHERE repository_id = $1 AND ($2::smallint IS NULL OR type = $2)`, s.repo, typ)
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
	if w, ok := s.written[h]; ok {
		return int64(len(w.content)), nil
	}
	var size int64
	err := s.q.QueryRow(s.ctx, `SELECT size FROM git_objects WHERE repository_id = $1 AND hash = $2`,
		s.repo, h[:]).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, plumbing.ErrObjectNotFound
	}
	return size, wrap(err, "read git object size")
}

// PackfileWriter returns a writer for a packfile, as a fetch or a push
// brings one: it is spooled to a temporary file, and on Close its objects
// are stored one by one, deltas resolved (git_objects holds objects whole).
func (s *GitStorage) PackfileWriter() (io.WriteCloser, error) {
	f, err := os.CreateTemp("", "vibegrapher-packfile-")
	if err != nil {
		return nil, fmt.Errorf("spool git packfile: %w", err)
	}
	return &packfileWriter{s: s, f: f}, nil
}

type packfileWriter struct {
	s *GitStorage
	f *os.File
}

func (w *packfileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *packfileWriter) Close() error {
	defer os.Remove(w.f.Name())
	defer w.f.Close()
	size, err := w.f.Seek(0, io.SeekCurrent)
	if err != nil || size == 0 { // nothing was written: nothing to store
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p, err := packfile.NewParserWithStorage(packfile.NewScanner(w.f), w.s)
	if err != nil {
		return fmt.Errorf("read git packfile: %w", err)
	}
	if _, err := p.Parse(); err != nil {
		return fmt.Errorf("store git packfile: %w", err)
	}
	return nil
}

func (s *GitStorage) AddAlternate(string) error {
	return errors.New("git storage in PostgreSQL does not support alternates")
}

// --- references

func (s *GitStorage) SetReference(ref *plumbing.Reference) error {
	if ref == nil { // as go-git's storages: nothing to set
		return nil
	}
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
// with a zero hash means "only if ref does not exist yet". As with git
// update-ref, a reference that does not exist has changed from any other old
// (go-git's memory storage would create it).
func (s *GitStorage) CheckAndSetReference(ref, old *plumbing.Reference) error {
	if ref == nil || old == nil {
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
	return s.updateRepository("write git config", `UPDATE git_repositories SET config = $2 WHERE id = $1`, raw)
}

// --- shallow commits, index and submodules

// SetShallow records the commits whose parents the repository does not hold.
func (s *GitStorage) SetShallow(commits []plumbing.Hash) error {
	var hashes [][]byte // NULL when there are none
	for i := range commits {
		hashes = append(hashes, commits[i][:])
	}
	return s.updateRepository("write shallow commits", `UPDATE git_repositories SET shallow = $2 WHERE id = $1`, hashes)
}

func (s *GitStorage) Shallow() ([]plumbing.Hash, error) {
	var hashes [][]byte
	err := s.q.QueryRow(s.ctx, `SELECT shallow FROM git_repositories WHERE id = $1`, s.repo).Scan(&hashes)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap(err, "read shallow commits")
	}
	var out []plumbing.Hash
	for _, b := range hashes {
		var h plumbing.Hash
		if len(b) != len(h) {
			return nil, fmt.Errorf("shallow commit of %d bytes in git repository %s", len(b), s.repo)
		}
		copy(h[:], b)
		out = append(out, h)
	}
	return out, nil
}

// SetIndex keeps idx in git's own index file format. Like go-git's storages
// it sets idx.ModTime, which go-git's racy-git check compares file times with.
func (s *GitStorage) SetIndex(idx *index.Index) error {
	var buf bytes.Buffer
	if err := index.NewEncoder(&buf).Encode(idx); err != nil {
		return fmt.Errorf("encode git index: %w", err)
	}
	// PostgreSQL keeps microseconds: the time read back is the time set.
	idx.ModTime = time.Now().Truncate(time.Microsecond)
	return s.updateRepository("write git index",
		`UPDATE git_repositories SET index_file = $2, index_written_at = $3 WHERE id = $1`, buf.Bytes(), idx.ModTime)
}

// Index returns the stored index, or an empty one (version 2) when none was
// ever stored, as go-git's memory storage does.
func (s *GitStorage) Index() (*index.Index, error) {
	var raw []byte
	var written *time.Time
	err := s.q.QueryRow(s.ctx, `SELECT index_file, index_written_at FROM git_repositories WHERE id = $1`, s.repo).Scan(&raw, &written)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap(err, "read git index")
	}
	idx := &index.Index{Version: 2}
	if len(raw) == 0 {
		return idx, nil
	}
	if err := index.NewDecoder(bytes.NewReader(raw)).Decode(idx); err != nil {
		return nil, fmt.Errorf("decode git index: %w", err)
	}
	if written != nil {
		idx.ModTime = *written
	}
	return idx, nil
}

// Module returns the storage of submodule name: a repository of its own,
// created on first use, that goes when this one is deleted.
func (s *GitStorage) Module(name string) (storage.Storer, error) {
	_, err := s.q.Exec(s.ctx, `
		INSERT INTO git_repositories (id, parent_id, module_name) VALUES ($1, $2, $3)
		ON CONFLICT (parent_id, module_name) DO NOTHING`, uuid.New(), s.repo, name)
	if err != nil {
		return nil, wrap(err, "create git submodule")
	}
	var id uuid.UUID
	err = s.q.QueryRow(s.ctx, `SELECT id FROM git_repositories WHERE parent_id = $1 AND module_name = $2`, s.repo, name).Scan(&id)
	if err != nil {
		return nil, wrap(err, "read git submodule")
	}
	return NewGitStorage(s.ctx, s.q, id), nil
}

// updateRepository runs an UPDATE of this repository's row ($1 is its id).
func (s *GitStorage) updateRepository(what, sql string, args ...any) error {
	tag, err := s.q.Exec(s.ctx, sql, append([]any{s.repo}, args...)...)
	if err != nil {
		return wrap(err, what)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: git repository %s does not exist", what, s.repo)
	}
	return nil
}
