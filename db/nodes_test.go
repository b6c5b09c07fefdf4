package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/domain"
)

func TestProjectNodesFollowTheHeadCommit(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	store := &db.Store{Pool: pool}
	ctx := context.Background()
	one := "from agents import Agent\n\nhelper = Agent(name=\"Helper\")\n"
	p, err := store.CreateProject(ctx, domain.NewProject{Name: "nodes", Code: &one})
	if err != nil {
		t.Fatal(err)
	}
	ids := func() string {
		t.Helper()
		nodes, err := store.ProjectNodes(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range nodes {
			out = append(out, n.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(); got != "helper" {
		t.Fatalf("nodes of the first commit = %q", got)
	}
	if got := ids(); got != "helper" {
		t.Fatalf("nodes asked again = %q", got)
	}

	repoID := uuid.MustParse(strings.TrimPrefix(p.RepositoryPath, "postgres:git_repositories/"))
	commit := func(code string) {
		t.Helper()
		repo := db.NewGitStorage(ctx, pool, repoID)
		head, err := db.BranchHead(repo, p.CurrentBranch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CommitFiles(repo, p.CurrentBranch, head, map[string]string{domain.ScriptPath: code}, "change", db.Committer); err != nil {
			t.Fatal(err)
		}
	}
	commit(one + "triage = Agent(name=\"Triage\", handoffs=[helper])\n")
	if got := ids(); got != "helper,triage" {
		t.Fatalf("nodes after a commit = %q", got)
	}

	commit("helper = Agent(\n")
	for range 2 {
		_, err := store.ProjectNodes(ctx, p.ID)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.ECONFLICT || !strings.Contains(err.Error(), "does not parse") {
			t.Fatalf("nodes of code that does not parse: %v", err)
		}
	}

	if _, err := store.ProjectNodes(ctx, uuid.NewString()); !isNotFound(err) {
		t.Fatalf("nodes of an unknown project: %v", err)
	}
}

func isNotFound(err error) bool {
	var de *domain.Error
	return errors.As(err, &de) && de.Code == domain.ENOTFOUND
}
