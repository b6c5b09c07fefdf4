package domain

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
)

// ScriptPath is the path, inside a project's git repository, of the project's
// one Python file. Everything that reads or writes the code goes through it, so
// that projects with several files later change one place.
const ScriptPath = "script.py"

// DefaultBranch is the branch a new project's history starts on.
const DefaultBranch = "main"

// Limits on project input. The name limit keeps slugs and UI labels sane; the
// code limit matches the REST body limit.
const (
	MaxProjectNameLen = 200
	MaxCodeBytes      = 1 << 20
)

// Project is one workflow under change. Its code, head commit and branch are
// read from its git repository, which lives in PostgreSQL; RepositoryPath
// names that repository.
type Project struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Slug           string    `json:"slug"`
	RepositoryPath string    `json:"repository_path"`
	CurrentCode    string    `json:"current_code"`
	CurrentCommit  string    `json:"current_commit"`
	CurrentBranch  string    `json:"current_branch"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Commit is one entry of a project's git log.
type Commit struct {
	SHA       string    `json:"sha"`
	Message   string    `json:"message"`
	Author    string    `json:"author"`
	Parents   []string  `json:"parents"`
	CreatedAt time.Time `json:"created_at"`
}

// NewProject is what a client asks for when creating a project.
type NewProject struct {
	Name      string  `json:"name" description:"Display name, 1 to 200 characters; the slug is made from it"`
	Code      *string `json:"code,omitempty" description:"Initial Python code; a sample Agents SDK workflow when omitted"`
	ProjectID *string `json:"project_id,omitempty" description:"Client-chosen UUID, the new project's id: sending the same one again (a retry whose answer was lost) answers the project (201) and creates nothing; with another name or code, or of a deleted project, 409"`
}

// Validate trims the name and checks the rules a project must meet. It
// returns the code to commit first (the given one, or SampleWorkflow) and
// the project's id (the client's project_id, or a new one).
func (p *NewProject) Validate() (string, uuid.UUID, error) {
	p.Name = strings.TrimSpace(p.Name)
	switch {
	case p.Name == "":
		return "", uuid.Nil, Invalid("name", "is required and must not be blank")
	case utf8.RuneCountInString(p.Name) > MaxProjectNameLen:
		return "", uuid.Nil, Invalid("name", "must be at most %d characters, got %d", MaxProjectNameLen, utf8.RuneCountInString(p.Name))
	case strings.ContainsFunc(p.Name, unicode.IsControl):
		return "", uuid.Nil, Invalid("name", "must not contain control characters")
	}
	id, err := ClientID("project_id", p.ProjectID)
	if err != nil {
		return "", uuid.Nil, err
	}
	if p.Code == nil {
		return SampleWorkflow, id, nil
	}
	if err := ValidateCode(*p.Code); err != nil {
		return "", uuid.Nil, err
	}
	return *p.Code, id, nil
}

// ValidateCode checks that code can be stored as the project's file.
func ValidateCode(code string) error {
	switch {
	case len(code) > MaxCodeBytes:
		return &Error{Code: ETOOLARGE, Field: "code", Message: fmt.Sprintf("must be at most %d bytes (1 MiB), got %d", MaxCodeBytes, len(code))}
	case !utf8.ValidString(code):
		return Invalid("code", "must be valid UTF-8")
	case strings.ContainsRune(code, 0):
		return Invalid("code", "must not contain NUL bytes")
	}
	return nil
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// Slugify makes the base slug of a name: lower case ASCII letters and digits
// joined by single dashes ("My Project" → "my-project"). Accents are dropped
// ("Café" → "cafe"); a name with nothing usable becomes "project". Uniqueness
// is the store's job: it appends -2, -3, … to the base.
func Slugify(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(strings.ToLower(name)) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(r)
	}
	s := strings.Trim(nonSlug.ReplaceAllString(b.String(), "-"), "-")
	if len(s) > 80 {
		s = strings.TrimRight(s[:80], "-")
	}
	if s == "" {
		return "project"
	}
	return s
}
