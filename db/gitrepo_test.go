package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// The porcelain is written on go-git's storer interfaces: it behaves the same
// on GitStorage and on go-git's own memory storage.
func TestPorcelainOnAnyStorage(t *testing.T) {
	t.Parallel()
	storages := map[string]func(t *testing.T) db.GitStorer{
		"postgres": func(t *testing.T) db.GitStorer {
			s, err := db.InitRepository(context.Background(), dbtest.New(t), uuid.New(), "main")
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"memory": func(*testing.T) db.GitStorer { return memory.NewStorage() },
	}
	for name, open := range storages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if head, err := db.BranchHead(s, "main"); err != nil || !head.IsZero() {
				t.Fatalf("head of a new repository = %s, %v; want zero", head, err)
			}
			first, err := db.CommitFiles(s, "main", plumbing.ZeroHash, map[string]string{"script.py": "x = 1\n"}, "first", sig)
			if err != nil {
				t.Fatal(err)
			}
			second, err := db.CommitFiles(s, "main", first, map[string]string{"script.py": "x = 2\n", "lib/util.py": "y = 3\n"}, "second", sig)
			if err != nil {
				t.Fatal(err)
			}
			if head, err := db.BranchHead(s, "main"); err != nil || head != second {
				t.Fatalf("head = %s, %v; want %s", head, err, second)
			}
			for _, c := range []struct {
				commit     plumbing.Hash
				path, want string
			}{{first, "script.py", "x = 1\n"}, {second, "script.py", "x = 2\n"}, {second, "lib/util.py", "y = 3\n"}} {
				if got, err := db.ReadFile(s, c.commit, c.path); err != nil || got != c.want {
					t.Errorf("ReadFile(%s, %s) = %q, %v; want %q", c.commit, c.path, got, err, c.want)
				}
			}
			if _, err := db.ReadFile(s, first, "lib/util.py"); err == nil {
				t.Error("ReadFile found lib/util.py in the first commit")
			}
			log, err := db.Log(s, second, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(log) != 2 || log[0].SHA != second.String() || log[0].Message != "second" ||
				log[1].SHA != first.String() || len(log[1].Parents) != 0 || log[0].Parents[0] != first.String() {
				t.Fatalf("log = %+v", log)
			}

			// A writer whose parent is no longer the head, or who makes a
			// root commit on an existing branch, loses; the head stays.
			for _, parent := range []plumbing.Hash{first, plumbing.ZeroHash} {
				_, err := db.CommitFiles(s, "main", parent, map[string]string{"script.py": "x = 9\n"}, "stale", sig)
				if !errors.Is(err, db.ErrBranchMoved) {
					t.Errorf("commit on parent %s: %v, want ErrBranchMoved", parent, err)
				}
			}
			if head, err := db.BranchHead(s, "main"); err != nil || head != second {
				t.Fatalf("head after stale commits = %s, %v; want %s", head, err, second)
			}

			for _, p := range []string{"", "/abs", "a/../b", "a//b", ".git/config", "x\x00y"} {
				if _, err := db.CommitFiles(s, "main", second, map[string]string{p: "z"}, "bad", sig); err == nil {
					t.Errorf("path %q was committed", p)
				}
			}
		})
	}
}
