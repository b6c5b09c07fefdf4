package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

// BenchmarkCreateProject measures POST /projects' store work: a project row,
// a repository, the initial commit of the sample workflow and its event.
func BenchmarkCreateProject(b *testing.B) {
	store := &db.Store{Pool: dbtest.New(b)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := store.CreateProject(ctx, domain.NewProject{Name: fmt.Sprintf("bench %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateProjectParallel is the same with concurrent clients, all
// taking slugs from one base name (the slug allocation contends).
func BenchmarkCreateProjectParallel(b *testing.B) {
	store := &db.Store{Pool: dbtest.New(b)}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := store.CreateProject(ctx, domain.NewProject{Name: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCommit measures one commit of the sample-sized script onto a
// branch: blob, tree, commit and the reference compare-and-swap, in one
// transaction.
func BenchmarkCommit(b *testing.B) {
	pool := dbtest.New(b)
	ctx := context.Background()
	id := uuid.New()
	repo, err := db.InitRepository(ctx, pool, id, "main")
	if err != nil {
		b.Fatal(err)
	}
	head, err := db.CommitFiles(repo, "main", plumbing.ZeroHash, map[string]string{domain.ScriptPath: domain.SampleWorkflow}, "init", db.Committer)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		err := db.InTx(ctx, pool, func(tx pgx.Tx) error {
			code := fmt.Sprintf("%s\n# change %d\n", domain.SampleWorkflow, i)
			h, err := db.CommitFiles(db.NewGitStorage(ctx, tx, id), "main", head, map[string]string{domain.ScriptPath: code}, "change", db.Committer)
			head = h
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadHead measures reading a project's current code from git: the
// reference, the commit, the tree and the blob.
func BenchmarkReadHead(b *testing.B) {
	store := &db.Store{Pool: dbtest.New(b)}
	ctx := context.Background()
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "read"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := store.GetProject(ctx, p.ID); err != nil {
			b.Fatal(err)
		}
	}
}
