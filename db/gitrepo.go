package db

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage"
	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/domain"
)

// This file is the porcelain: the few repository operations the application
// needs, written with go-git's plumbing on go-git's storer interfaces, so they
// run on GitStorage and on any other go-git storage alike.

// GitStorer is what committing needs of a storage: objects and references.
// Every go-git storage.Storer is one.
type GitStorer interface {
	storer.EncodedObjectStorer
	storer.ReferenceStorer
}

// ErrBranchMoved is returned by CommitFiles when the branch no longer points
// at the parent the commit was built on: another writer committed first.
var ErrBranchMoved = &domain.Error{Code: domain.ECONFLICT, Message: "the branch moved while committing; reload and try again"}

// CommitFiles writes a commit whose tree holds exactly files (path → content)
// on top of parent, and moves branch from parent to it with a compare-and-swap.
// A zero parent makes a root commit and requires that branch does not exist.
func CommitFiles(s GitStorer, branch string, parent plumbing.Hash, files map[string]string, message string, sig object.Signature) (plumbing.Hash, error) {
	tree, err := writeTree(s, files)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	c := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: tree}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	h, err := storeObject(s, c)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write commit: %w", err)
	}
	ref := plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), h)
	old := plumbing.NewHashReference(ref.Name(), parent)
	if err := s.CheckAndSetReference(ref, old); err != nil {
		if errors.Is(err, storage.ErrReferenceHasChanged) {
			return plumbing.ZeroHash, ErrBranchMoved
		}
		return plumbing.ZeroHash, err
	}
	return h, nil
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func storeObject(s storer.EncodedObjectStorer, e encoder) (plumbing.Hash, error) {
	o := s.NewEncodedObject()
	if err := e.Encode(o); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(o)
}

func storeBlob(s storer.EncodedObjectStorer, content string) (plumbing.Hash, error) {
	o := s.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	w, err := o.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write([]byte(content)); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(o)
}

// writeTree stores the blobs and the (nested) trees of files and returns the
// root tree. go-git's encoder checks almost nothing about names, so the paths
// are validated here.
func writeTree(s storer.EncodedObjectStorer, files map[string]string) (plumbing.Hash, error) {
	type dir struct {
		files map[string]string
		dirs  map[string]*dir
	}
	root := &dir{files: map[string]string{}, dirs: map[string]*dir{}}
	for p, content := range files {
		if err := validPath(p); err != nil {
			return plumbing.ZeroHash, err
		}
		parts := strings.Split(p, "/")
		d := root
		for _, name := range parts[:len(parts)-1] {
			if d.dirs[name] == nil {
				d.dirs[name] = &dir{files: map[string]string{}, dirs: map[string]*dir{}}
			}
			d = d.dirs[name]
		}
		d.files[parts[len(parts)-1]] = content
	}
	var write func(d *dir) (plumbing.Hash, error)
	write = func(d *dir) (plumbing.Hash, error) {
		t := &object.Tree{}
		for name, content := range d.files {
			if d.dirs[name] != nil {
				return plumbing.ZeroHash, fmt.Errorf("path %q is both a file and a directory", name)
			}
			h, err := storeBlob(s, content)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			t.Entries = append(t.Entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
		}
		for name, sub := range d.dirs {
			h, err := write(sub)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			t.Entries = append(t.Entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
		}
		sort.Sort(object.TreeEntrySorter(t.Entries))
		return storeObject(s, t)
	}
	return write(root)
}

func validPath(p string) error {
	if p == "" || path.Clean(p) != p || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
		return fmt.Errorf("invalid file path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "." || part == ".." || part == ".git" {
			return fmt.Errorf("invalid file path %q", p)
		}
	}
	return nil
}

// BranchHead returns the commit branch points at, or a zero hash when the
// branch does not exist yet.
func BranchHead(s storer.ReferenceStorer, branch string) (plumbing.Hash, error) {
	ref, err := s.Reference(plumbing.NewBranchReferenceName(branch))
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// ReadFile returns the content of file p in commit c.
func ReadFile(s storer.EncodedObjectStorer, c plumbing.Hash, p string) (string, error) {
	commit, err := object.GetCommit(s, c)
	if err != nil {
		return "", fmt.Errorf("read commit %s: %w", c, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return "", fmt.Errorf("read tree of %s: %w", c, err)
	}
	f, err := tree.File(p)
	if err != nil {
		return "", fmt.Errorf("read %s at %s: %w", p, c, err)
	}
	return f.Contents()
}

// Log returns up to limit commits reachable from head, newest first, following
// first parents; none, an empty list, from a zero head.
func Log(s storer.EncodedObjectStorer, head plumbing.Hash, limit int) ([]domain.Commit, error) {
	out := []domain.Commit{} // an answer's JSON array, not null
	for h := head; !h.IsZero() && len(out) < limit; {
		c, err := object.GetCommit(s, h)
		if err != nil {
			return nil, fmt.Errorf("read commit %s: %w", h, err)
		}
		parents := make([]string, len(c.ParentHashes))
		for i, p := range c.ParentHashes {
			parents[i] = p.String()
		}
		out = append(out, domain.Commit{
			SHA: h.String(), Message: c.Message, Author: c.Author.Name,
			Parents: parents, CreatedAt: c.Committer.When.UTC(),
		})
		h = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			h = c.ParentHashes[0]
		}
	}
	return out, nil
}

// logAfter is where a log read page by page goes on after commit sha (a
// client's cursor, ?before=): its first parent, or zero after the first
// commit. A sha that is malformed or not a commit of the repository is a 400
// naming before.
func logAfter(s storer.EncodedObjectStorer, sha string) (plumbing.Hash, error) {
	if !plumbing.IsHash(sha) {
		return plumbing.ZeroHash, domain.Invalid("before", "must be the full 40-character SHA of a commit, got %q", sha)
	}
	c, err := object.GetCommit(s, plumbing.NewHash(sha))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return plumbing.ZeroHash, domain.Invalid("before", "%s is not a commit of this project", sha)
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read commit %s: %w", sha, err)
	}
	if len(c.ParentHashes) == 0 {
		return plumbing.ZeroHash, nil
	}
	return c.ParentHashes[0], nil
}

// scripts caches script.py by commit for the vibecode steps, which read
// their base commit's code at every step. A commit never changes, so an entry
// is never stale. The cache holds up to maxScriptBytes of code and entries
// and forgets the least recently used commit first (scriptEntryOverhead counts what
// each entry costs beside its code): it held 256 commits and was emptied
// whole when full, so with more projects at work than that (500 sessions of
// the load, each its own project) nearly every step read its code again, in
// three queries.
var scripts = newScriptCache(maxScriptBytes)

// maxScriptBytes bounds the cached code and entries: about 3,000 commits of
// a 5 KB agents file, a hundred of a 150 KB one.
const maxScriptBytes = 16 << 20

type scriptKey struct {
	repo   uuid.UUID
	commit plumbing.Hash
}

// scriptEntryOverhead is what an entry costs beside its code (the list
// element, the entry, its key and the map's slot), counted so that small or
// empty scripts are bounded too.
const scriptEntryOverhead = 256

// scriptCache is a least-recently-used cache of code by commit, bounded by
// the bytes of the code and of the entries.
type scriptCache struct {
	mu    sync.Mutex
	max   int
	bytes int
	order list.List // of *scriptEntry, the most recently used first
	byKey map[scriptKey]*list.Element
}

type scriptEntry struct {
	key  scriptKey
	code string
}

func newScriptCache(maxBytes int) *scriptCache {
	return &scriptCache{max: maxBytes, byKey: map[scriptKey]*list.Element{}}
}

func (c *scriptCache) get(k scriptKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[k]
	if !ok {
		return "", false
	}
	c.order.MoveToFront(e)
	return e.Value.(*scriptEntry).code, true
}

// put keeps code for k, forgetting the least recently used entries until
// the cache is within its bound; code larger than the bound is not kept.
func (c *scriptCache) put(k scriptKey, code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok || scriptEntryOverhead+len(code) > c.max {
		return
	}
	c.byKey[k] = c.order.PushFront(&scriptEntry{key: k, code: code})
	c.bytes += scriptEntryOverhead + len(code)
	for c.bytes > c.max {
		old := c.order.Remove(c.order.Back()).(*scriptEntry)
		delete(c.byKey, old.key)
		c.bytes -= scriptEntryOverhead + len(old.code)
	}
}

// forget drops every entry of repository repo: a deleted project's code.
// It walks the whole cache, which deletes can afford.
func (c *scriptCache) forget(repo uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.order.Front(); e != nil; {
		next := e.Next()
		if old := e.Value.(*scriptEntry); old.key.repo == repo {
			c.order.Remove(e)
			delete(c.byKey, old.key)
			c.bytes -= scriptEntryOverhead + len(old.code)
		}
		e = next
	}
}

// scriptAt returns script.py at commit c of repository repo, and keeps it
// for the next reads.
func scriptAt(ctx context.Context, q Querier, repo uuid.UUID, c plumbing.Hash) (string, error) {
	return readScript(ctx, q, repo, c, true)
}

// readScript is scriptAt; with keep false, what it reads is not kept: a
// listing of every project would push out the entries that steps use.
func readScript(ctx context.Context, q Querier, repo uuid.UUID, c plumbing.Hash, keep bool) (string, error) {
	k := scriptKey{repo, c}
	if code, ok := scripts.get(k); ok {
		return code, nil
	}
	code, err := ReadFile(NewGitStorage(ctx, q, repo), c, domain.ScriptPath)
	if err != nil {
		return "", err
	}
	if keep {
		scripts.put(k, code)
	}
	return code, nil
}
