package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
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

// Beyond go-git's suite: CheckAndSetReference follows git update-ref's
// <new> <old> rule, so a reference that is missing has changed too, and a
// zero old hash means "only if it does not exist yet".
func TestGitStorageCheckAndSetReference(t *testing.T) {
	t.Parallel()
	repo, err := db.InitRepository(context.Background(), dbtest.New(t), uuid.New(), "main")
	if err != nil {
		t.Fatal(err)
	}
	a := plumbing.NewHash("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	b := plumbing.NewHash("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	name := plumbing.ReferenceName("refs/heads/topic")
	ref := func(h plumbing.Hash) *plumbing.Reference { return plumbing.NewHashReference(name, h) }
	onMain := plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main")
	onOther := plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/other")
	for _, c := range []struct {
		what     string
		set, old *plumbing.Reference
		want     error
		after    string // the reference's target afterwards
	}{
		{"moving a missing reference", ref(b), ref(a), storage.ErrReferenceHasChanged, ""},
		{"creating it", ref(a), ref(plumbing.ZeroHash), nil, a.String()},
		{"creating it again", ref(b), ref(plumbing.ZeroHash), storage.ErrReferenceHasChanged, a.String()},
		{"moving it from a stale hash", ref(b), ref(b), storage.ErrReferenceHasChanged, a.String()},
		{"moving it", ref(b), ref(a), nil, b.String()},
		{"setting it unconditionally", ref(a), nil, nil, a.String()},
	} {
		if err := repo.CheckAndSetReference(c.set, c.old); err != c.want {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
		got, err := repo.Reference(name)
		switch {
		case c.after == "" && err != plumbing.ErrReferenceNotFound:
			t.Errorf("after %s: %v, %v; want no reference", c.what, got, err)
		case c.after != "" && (err != nil || got.Hash().String() != c.after):
			t.Errorf("after %s: %v, %v; want %s", c.what, got, err, c.after)
		}
	}
	// A symbolic reference is compared by its target.
	if err := repo.CheckAndSetReference(onOther, onOther); err != storage.ErrReferenceHasChanged {
		t.Errorf("HEAD moved from a target it did not have: %v", err)
	}
	if err := repo.CheckAndSetReference(onOther, onMain); err != nil {
		t.Errorf("HEAD did not move from main: %v", err)
	}
	if head, err := repo.Reference(plumbing.HEAD); err != nil || head.Target() != onOther.Target() {
		t.Errorf("HEAD = %v, %v; want %s", head, err, onOther.Target())
	}
}

// A submodule is a repository of its own that goes with its superproject.
func TestGitStorageModuleGoesWithItsRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, id, repo, _ := newRepository(t, "x = 1\n")
	mod, err := repo.Module("lib")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CommitFiles(mod, "main", plumbing.ZeroHash, map[string]string{"lib.py": "y = 1\n"}, "lib", sig); err != nil {
		t.Fatal(err)
	}
	again, err := repo.Module("lib")
	if err != nil {
		t.Fatal(err)
	}
	if head, err := db.BranchHead(again, "main"); err != nil || head.IsZero() {
		t.Fatalf("the submodule's head, opened again = %s, %v", head, err)
	}
	if n := dbtest.Count(t, pool, `SELECT count(*) FROM git_repositories`); n != 2 {
		t.Fatalf("%d repositories, want the project's and its submodule's", n)
	}
	if err := db.DeleteRepository(ctx, pool, id); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"git_repositories", "git_objects", "git_references"} {
		if n := dbtest.Count(t, pool, `SELECT count(*) FROM `+table); n != 0 {
			t.Errorf("after delete: %d rows in %s", n, table)
		}
	}
}

// readObject is the statement that reads a git object.
const readObject = "SELECT type, content FROM git_objects"

// A project's code is read once per commit in a process: creating a project
// writes its commit's objects with its other statements and reads none back,
// and its first step and the next read of the project find the code the
// creation committed without reading a git object; BaseCode is that code.
func TestANewProjectsFirstStepReadsNoGitObject(t *testing.T) {
	t.Parallel()
	pool, sent := countedPool(t)
	store := &db.Store{Pool: pool}
	ctx := context.Background()
	p, sess := newSession(t, store, "first step")
	for _, s := range append(sent.matching(0, "INSERT INTO git_objects"), sent.containing(0, readObject)...) {
		t.Errorf("creating a project: %s", s)
	}
	accepted, err := store.SubmitMessage(ctx, sess.ID, domain.NewMessage{Prompt: "hi"},
		func(_ context.Context, _ pgx.Tx, ids []string) ([]int64, error) { return make([]int64, len(ids)), nil })
	if err != nil {
		t.Fatal(err)
	}
	n := sent.count()
	turn, err := store.StartTurn(ctx, accepted.MessageID, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.GetProject(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if turn.BaseCode != p.CurrentCode || got.CurrentCode != p.CurrentCode || p.CurrentCode == "" {
		t.Errorf("the step's base code and the project's code are not what was committed:\n%q\n%q\n%q", turn.BaseCode, got.CurrentCode, p.CurrentCode)
	}
	for _, s := range sent.containing(n, "git_objects") {
		t.Errorf("read a git object: %s", s)
	}
}

// The script cache holds what steps read: a listing of every project reads
// the code the cache lacks without keeping it (it would push out the steps'
// entries), reading one project keeps its code, and deleting it forgets it.
func TestTheScriptCacheKeepsWhatStepsRead(t *testing.T) {
	t.Parallel()
	store := &db.Store{Pool: dbtest.New(t)}
	ctx := context.Background()
	code := "x = 1\n"
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "cached", Code: &code})
	if err != nil {
		t.Fatal(err)
	}
	if !db.ScriptCached(p.ID, p.CurrentCommit) {
		t.Fatal("creating a project did not keep its code")
	}
	db.ForgetScripts(p.ID) // as if another process had created it
	list, err := store.ListProjects(ctx, db.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].CurrentCode != "x = 1\n" {
		t.Fatalf("listed %+v", list)
	}
	if db.ScriptCached(p.ID, p.CurrentCommit) {
		t.Error("the listing kept the project's code")
	}
	got, err := store.GetProject(ctx, p.ID)
	if err != nil || got.CurrentCode != "x = 1\n" {
		t.Fatalf("project: %+v, %v", got, err)
	}
	if !db.ScriptCached(p.ID, p.CurrentCommit) {
		t.Error("reading the project did not keep its code")
	}
	if err := store.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if db.ScriptCached(p.ID, p.CurrentCommit) {
		t.Error("the deleted project's code is still kept")
	}
}

// Committing a diff keeps the new head's code for what reads it next: the
// commit itself (its answer, its log entry and code_changed carry the code)
// and the next read of the project read no git object, and the code is the
// patched one.
func TestACommittedDiffsCodeIsKeptForItsNextReads(t *testing.T) {
	t.Parallel()
	pool, sent := countedPool(t)
	store := &db.Store{Pool: pool}
	ctx := context.Background()
	p, sess, accepted, turn, _ := startedStep(t, store, "commit "+uuid.NewString())
	patched := p.CurrentCode + "# reviewed\n"
	if err := store.EndTurn(ctx, &turn, db.TurnEnd{Status: domain.StatusDiffCreated, DiffStep: accepted.MessageID + "/diff",
		Diff: &domain.Diff{ProjectID: p.ID, SessionID: &sess.ID, MessageID: &accepted.MessageID, BaseCommit: turn.BaseCommit,
			TargetBranch: p.CurrentBranch, DiffContent: patch.Unified(p.CurrentCode, patched, domain.ScriptPath),
			Status: domain.DiffEvaluatorApproved, VibecoderPrompt: "hi", CommitMessage: "Note the review"}}); err != nil {
		t.Fatal(err)
	}
	var diffID string
	if err := pool.QueryRow(ctx, `SELECT id::text FROM diffs WHERE project_id = $1`, p.ID).Scan(&diffID); err != nil {
		t.Fatal(err)
	}
	n := sent.count()
	res, err := store.CommitDiff(ctx, diffID, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.GetProject(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Project.CurrentCode != patched || got.CurrentCode != patched || got.CurrentCommit != res.Commit.SHA {
		t.Errorf("after the commit: code %q / %q at %s, want %q at %s", res.Project.CurrentCode, got.CurrentCode, got.CurrentCommit, patched, res.Commit.SHA)
	}
	if reads := sent.containing(n, readObject); len(reads) != 0 {
		t.Errorf("the commit and the next read of the project read %d git objects", len(reads))
	}
}

// In a transaction of InTx, a commit of files larger than what a storage
// keeps of what it wrote is stored whole: the objects before the bound go
// with the next statement, those after it at once, and every one reads back,
// in the transaction and after it.
func TestACommitPastTheWrittenBoundIsStoredWhole(t *testing.T) {
	t.Parallel()
	pool, sent := countedPool(t)
	ctx := context.Background()
	id := uuid.New()
	files := map[string]string{}
	for i := range 4 { // 4 × 400 KB: past the 1 MB a storage keeps
		files[fmt.Sprintf("big%d.py", i)] = strings.Repeat(fmt.Sprintf("x%d = 1\n", i), 400<<10/7)
	}
	var head plumbing.Hash
	if err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		repo, err := db.InitRepository(ctx, tx, id, "main")
		if err != nil {
			return err
		}
		n := sent.count()
		if head, err = db.CommitFiles(repo, "main", plumbing.ZeroHash, files, "big", sig); err != nil {
			return err
		}
		// Two blobs fit in the bound and wait; the third goes at once, and
		// takes them with it; the fourth goes alone; the tree and the commit
		// wait for the next statement. No batch holds more than three.
		most := 0
		for _, s := range sent.containing(n, "INSERT INTO git_objects") {
			most = max(most, strings.Count(s, "INSERT INTO git_objects"))
		}
		if most != 3 {
			t.Errorf("a round trip carried up to %d of the commit's objects, want 3", most)
		}
		for name, want := range files {
			if got, err := db.ReadFile(db.NewGitStorage(ctx, tx, id), head, name); err != nil || got != want {
				return fmt.Errorf("in the transaction, %s: %d bytes, %v", name, len(got), err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		if got, err := db.ReadFile(db.NewGitStorage(ctx, pool, id), head, name); err != nil || got != want {
			t.Errorf("after the commit, %s: %d bytes, %v", name, len(got), err)
		}
	}
}
