package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

var sig = object.Signature{Name: "t", Email: "t@example.com"}

// newRepository makes a repository on a fresh database with a root commit of
// script.py.
func newRepository(t *testing.T, script string) (pool *pgxpool.Pool, id uuid.UUID, repo *db.GitStorage, root plumbing.Hash) {
	t.Helper()
	pool = dbtest.New(t)
	id = uuid.New()
	repo, err := db.InitRepository(context.Background(), pool, id, "main")
	if err != nil {
		t.Fatal(err)
	}
	root, err = db.CommitFiles(repo, "main", plumbing.ZeroHash, map[string]string{"script.py": script}, "first", sig)
	if err != nil {
		t.Fatal(err)
	}
	return pool, id, repo, root
}

func TestGitStorageCommitReadLogDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, id, repo, first := newRepository(t, "x = 1\n")
	second, err := db.CommitFiles(repo, "main", first, map[string]string{"script.py": "x = 2\n", "lib/util.py": "y = 3\n"}, "second", sig)
	if err != nil {
		t.Fatal(err)
	}

	head, err := db.BranchHead(repo, "main")
	if err != nil || head != second {
		t.Fatalf("head = %s, %v; want %s", head, err, second)
	}
	for _, c := range []struct {
		commit     plumbing.Hash
		path, want string
	}{{first, "script.py", "x = 1\n"}, {second, "script.py", "x = 2\n"}, {second, "lib/util.py", "y = 3\n"}} {
		got, err := db.ReadFile(repo, c.commit, c.path)
		if err != nil || got != c.want {
			t.Errorf("ReadFile(%s, %s) = %q, %v; want %q", c.commit, c.path, got, err, c.want)
		}
	}
	log, err := db.Log(repo, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Message != "second" || log[1].Message != "first" || log[0].Parents[0] != first.String() {
		t.Fatalf("log = %+v", log)
	}

	// The storage is a complete go-git repository: porcelain works on it.
	r, err := git.Open(repo, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := r.Head()
	if err != nil || ref.Hash() != second || ref.Name() != plumbing.NewBranchReferenceName("main") {
		t.Fatalf("Head() = %v, %v", ref, err)
	}
	iter, err := r.Log(&git.LogOptions{From: second})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = iter.ForEach(func(*object.Commit) error { n++; return nil })
	if n != 2 {
		t.Fatalf("go-git log walked %d commits, want 2", n)
	}

	if err := db.DeleteRepository(ctx, pool, id); err != nil {
		t.Fatal(err)
	}
	objects := dbtest.Count(t, pool, `SELECT count(*) FROM git_objects`)
	refs := dbtest.Count(t, pool, `SELECT count(*) FROM git_references`)
	if objects != 0 || refs != 0 {
		t.Fatalf("after delete: %d objects, %d refs remain", objects, refs)
	}
}

// Many writers commit on the same parent at once, each in its own
// transaction: per parent exactly one wins, the losers' transactions leave
// nothing behind, and the history stays a readable chain.
func TestGitStorageCompareAndSwapRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, id, repo, parent := newRepository(t, "v = 0\n")
	const rounds, writers = 5, 8
	for round := 1; round <= rounds; round++ {
		var wg sync.WaitGroup
		wins := make(chan plumbing.Hash, writers)
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
					s := db.NewGitStorage(ctx, tx, id)
					h, err := db.CommitFiles(s, "main", parent,
						map[string]string{"script.py": fmt.Sprintf("v = %d  # writer %d\n", round, w)}, "round", sig)
					if err == nil {
						wins <- h
					}
					return err
				})
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(wins)
		close(errs)
		if len(wins) != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1", round, len(wins))
		}
		for err := range errs {
			if !errors.Is(err, db.ErrBranchMoved) {
				t.Fatalf("round %d: loser failed with %v, want ErrBranchMoved", round, err)
			}
		}
		parent = <-wins
	}
	log, err := db.Log(repo, parent, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != rounds+1 {
		t.Fatalf("history has %d commits, want %d", len(log), rounds+1)
	}
	// Only the winners' objects exist: each round adds one blob, one tree and
	// one commit (the losers rolled back), plus the root's three.
	var objects int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM git_objects WHERE repository_id = $1`, id).Scan(&objects); err != nil {
		t.Fatal(err)
	}
	if objects != 3*(rounds+1) {
		t.Fatalf("%d objects stored, want %d", objects, 3*(rounds+1))
	}
}
