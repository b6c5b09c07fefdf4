package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	gitstoragetest "github.com/go-git/go-git/v5/storage/test"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"gopkg.in/check.v1"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
)

// The cases of go-git's suite that do not apply to GitStorage, and why. They
// skip themselves (the storage lacks the optional interface they test); the
// test below checks that nothing else skips.
var suiteSkips = map[string]string{
	// go-git's Transactioner buffers objects in memory until Commit; here a
	// GitStorage made on a pgx.Tx is the transaction, for objects and
	// references alike.
	"TestObjectStorerTxSetEncodedObjectAndCommit": "transactions are PostgreSQL's",
	"TestObjectStorerTxSetObjectAndGetObject":     "transactions are PostgreSQL's",
	"TestObjectStorerTxGetObjectNotFound":         "transactions are PostgreSQL's",
	"TestObjectStorerTxSetObjectAndRollback":      "transactions are PostgreSQL's",
	// Objects are stored whole, not as deltas inside packfiles.
	"TestDeltaObjectStorer": "no packfiles, so no delta objects",
}

// gitStorageSuite runs go-git's own storage test suite (storage/test) on a
// GitStorage: each case gets a new repository in one test database.
type gitStorageSuite struct {
	gitstoragetest.BaseStorageSuite
	pool *pgxpool.Pool
}

func (s *gitStorageSuite) SetUpTest(c *check.C) {
	ctx := context.Background()
	repo, err := db.InitRepository(ctx, s.pool, uuid.New(), "main")
	c.Assert(err, check.IsNil)
	// The suite expects a storage with no references, as go-git's memory
	// and filesystem storages start; InitRepository has written HEAD.
	c.Assert(repo.RemoveReference(plumbing.HEAD), check.IsNil)
	s.BaseStorageSuite = gitstoragetest.NewBaseStorageSuite(repo)
}

func TestGitStorageSuite(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	res := check.Run(&gitStorageSuite{pool: dbtest.New(t)}, &check.RunConf{Output: &out, Verbose: true})
	t.Log(out.String())
	if !res.Passed() {
		t.Fatalf("go-git's storage suite: %s", res)
	}
	// Skipped cases report "SKIP: <file>:<line>: <suite>.<case> (reason)".
	var skipped []string
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "SKIP:") {
			continue
		}
		name := line[strings.Index(line, ".Test")+1:]
		name, _, _ = strings.Cut(name, " ")
		if _, ok := suiteSkips[name]; !ok {
			t.Errorf("suite case %s was skipped: %s", name, line)
		}
		skipped = append(skipped, name)
	}
	if len(skipped) != len(suiteSkips) || res.Skipped != len(suiteSkips) {
		t.Errorf("skipped %v (%d), want exactly the cases of suiteSkips", skipped, res.Skipped)
	}
	if res.Succeeded == 0 {
		t.Fatal("no case of the suite ran")
	}
	t.Logf("go-git storage suite: %d passed, %d skipped", res.Succeeded, res.Skipped)
}
