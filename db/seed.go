package db

import (
	"context"
	"time"

	"github.com/vibegrapher/vibegrapher/domain"
)

// SampleProjectName names the project reset-db seeds.
const SampleProjectName = "Language Triage"

// SampleTestName names its test case. The test imports the workflow, so it
// needs the openai-agents package in the sandbox's Python (the Docker image
// has it).
const SampleTestName = "Triage hands off to both language agents"

const sampleTestCode = `names = [agent.name for agent in triage_agent.handoffs]
assert names == ["Spanish agent", "English agent"], names
`

// Seed creates the sample project, the Agents SDK triage workflow, with a
// test case.
func Seed(ctx context.Context, s *Store) (domain.Project, error) {
	p, err := s.CreateProject(ctx, domain.NewProject{Name: SampleProjectName})
	if err != nil {
		return p, err
	}
	timeout := 30
	_, err = s.CreateTest(ctx, p.ID, domain.NewTestCase{Name: SampleTestName, Code: sampleTestCode, TimeoutSeconds: &timeout}, 30*time.Second)
	return p, err
}
