package domain

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// TestCase is Python code run in the namespace of the project's code, e.g.
// `assert add(2, 3) == 5`: it passes when it runs to the end.
type TestCase struct {
	ID             string    `json:"id"`
	ProjectID      string    `json:"project_id"`
	Name           string    `json:"name"`
	Code           string    `json:"code"`
	TimeoutSeconds int       `json:"timeout_seconds"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// NewTestCase is the body that creates a test case. ProjectID is read from
// the body by POST /tests and from the path by POST /projects/{id}/tests.
type NewTestCase struct {
	ProjectID      string  `json:"project_id,omitempty" description:"Required by POST /tests; ignored under /projects/{id}/tests"`
	Name           string  `json:"name" description:"1 to 200 characters"`
	Code           string  `json:"code" description:"Python run in the namespace of the project's code"`
	TimeoutSeconds *int    `json:"timeout_seconds,omitempty" description:"1 to SANDBOX_TIMEOUT seconds; SANDBOX_TIMEOUT when omitted"`
	TestID         *string `json:"test_id,omitempty" description:"Client-chosen UUID, the new test's id: sending the same one again (a retry whose answer was lost) answers the test (201) and creates nothing; with another project, name, code or timeout, or once the test is deleted, 409"`
}

// Validate checks a new test case against the sandbox's longest run and
// returns its timeout and its id (the client's test_id, or a new one).
func (t *NewTestCase) Validate(maxTimeout time.Duration) (int, uuid.UUID, error) {
	t.Name = strings.TrimSpace(t.Name)
	limit := int(maxTimeout / time.Second)
	switch {
	case t.Name == "":
		return 0, uuid.Nil, Invalid("name", "is required and must not be blank")
	case utf8.RuneCountInString(t.Name) > MaxProjectNameLen:
		return 0, uuid.Nil, Invalid("name", "must be at most %d characters", MaxProjectNameLen)
	case strings.ContainsFunc(t.Name, unicode.IsControl): // as a project's name
		return 0, uuid.Nil, Invalid("name", "must not contain control characters")
	case strings.TrimSpace(t.Code) == "":
		return 0, uuid.Nil, Invalid("code", "is required and must not be blank")
	}
	if err := ValidateCode(t.Code); err != nil {
		return 0, uuid.Nil, err
	}
	id, err := ClientID("test_id", t.TestID)
	if err != nil {
		return 0, uuid.Nil, err
	}
	if t.TimeoutSeconds == nil {
		return limit, id, nil
	}
	if *t.TimeoutSeconds < 1 || *t.TimeoutSeconds > limit {
		return 0, uuid.Nil, Invalid("timeout_seconds", "must be between 1 and %d (SANDBOX_TIMEOUT), got %d", limit, *t.TimeoutSeconds)
	}
	return *t.TimeoutSeconds, id, nil
}

// Test run statuses.
const (
	RunQueued  = "queued"
	RunRunning = "running"
	RunPassed  = "passed"
	RunFailed  = "failed"
	RunTimeout = "timeout"
	RunError   = "error"
)

// TestRun is one execution of a test case on the current code or on a diff.
type TestRun struct {
	ID         string     `json:"id"`
	TestID     string     `json:"test_id"`
	ProjectID  string     `json:"project_id"`
	DiffID     *string    `json:"diff_id"`
	Commit     string     `json:"commit"`
	Status     string     `json:"status" enum:"queued,running,passed,failed,timeout,error"`
	Stdout     string     `json:"stdout"`
	Stderr     string     `json:"stderr"`
	ExitCode   *int       `json:"exit_code"`
	DurationMS *int64     `json:"duration_ms"`
	Error      *string    `json:"error"`
	JobID      *int64     `json:"job_id"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Finished reports whether the run has its result.
func (r TestRun) Finished() bool { return r.Status != RunQueued && r.Status != RunRunning }

// TestRunAccepted is the 202 answer to a run request.
type TestRunAccepted struct {
	TestRunID string `json:"test_run_id"`
	TestID    string `json:"test_id"`
	JobID     int64  `json:"job_id"`
	Status    string `json:"status"`
}
