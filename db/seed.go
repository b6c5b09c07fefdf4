package db

import (
	"context"

	"github.com/vibegrapher/vibegrapher/domain"
)

// SampleProjectName names the project reset-db seeds.
const SampleProjectName = "Language Triage"

// Seed creates the sample project: the Agents SDK triage workflow.
func Seed(ctx context.Context, s *Store) (domain.Project, error) {
	return s.CreateProject(ctx, domain.NewProject{Name: SampleProjectName})
}
