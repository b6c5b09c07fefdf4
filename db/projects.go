package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/event"
)

// Committer signs the commits the service writes.
var Committer = object.Signature{Name: "Vibegrapher", Email: "vibegrapher@localhost"}

type projectRow struct {
	id, repo         uuid.UUID
	name, slug, br   string
	created, updated time.Time
}

const projectColumns = `id, repository_id, name, slug, branch, created_at, updated_at`

func scanProject(r pgx.Row) (projectRow, error) {
	var p projectRow
	err := r.Scan(&p.id, &p.repo, &p.name, &p.slug, &p.br, &p.created, &p.updated)
	return p, err
}

// CreateProject stores a project and its repository with a first commit of
// its code, and emits project_created, all in one transaction.
func (s *Store) CreateProject(ctx context.Context, in domain.NewProject) (domain.Project, error) {
	code, id, err := in.Validate()
	if err != nil {
		return domain.Project{}, err
	}
	digest := createDigest(in.Name, code)
	var out domain.Project
	err = InTx(ctx, s.Pool, func(tx pgx.Tx) error {
		repo, err := InitRepository(ctx, tx, id, domain.DefaultBranch)
		if err != nil {
			return err
		}
		if in.ProjectID != nil {
			// After the repository's insert: one that waited for a
			// delete of the same id to commit finds its deleted_projects
			// row here (a statement sees what committed before it).
			if err := refuseDeletedID(ctx, tx, id); err != nil {
				return err
			}
		}
		if _, err := insertProject(ctx, tx, id, in.Name, domain.Slugify(in.Name), digest); err != nil {
			return err
		}
		sha, err := CommitFiles(repo, domain.DefaultBranch, plumbing.ZeroHash,
			map[string]string{domain.ScriptPath: code}, "Initial commit", signature())
		if err != nil {
			return err
		}
		scripts.put(scriptKey{id, sha}, code) // read back below, and by the first step
		p, err := scanProject(tx.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id))
		if err != nil {
			return wrap(err, "read new project")
		}
		out, err = projectAt(ctx, tx, p)
		if err != nil {
			return err
		}
		_, err = Emit(ctx, tx, out.ID, event.ProjectCreated{Project: out})
		return err
	})
	if isUniqueViolation(err, "git_repositories_pkey", "projects_pkey") {
		// The client's project_id exists: a repeat (perhaps sent while the
		// first was being stored, whose commit the insert waited for).
		return s.repeatedProject(ctx, id, digest)
	}
	return out, err
}

// createDigest is what a project was created from, to tell a repeat of its
// create from another request that reuses its id.
func createDigest(name, code string) []byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(code))
	return h.Sum(nil)
}

// refuseDeletedID refuses a client's project_id of a deleted project: its
// clients hold its project_deleted, and a subscribe to it is refused.
func refuseDeletedID(ctx context.Context, q Querier, id uuid.UUID) error {
	var deleted bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deleted_projects WHERE id = $1)`, id).Scan(&deleted); err != nil {
		return wrap(err, "read deleted projects")
	}
	if deleted {
		return &domain.Error{Code: domain.ECONFLICT, Field: "project_id",
			Message: "project " + id.String() + " was deleted; a new project needs a project_id of its own"}
	}
	return nil
}

// repeatedProject answers a create whose project_id exists: the project, when
// the same name and code created it, and otherwise 409.
func (s *Store) repeatedProject(ctx context.Context, id uuid.UUID, digest []byte) (domain.Project, error) {
	var first []byte
	err := s.Pool.QueryRow(ctx, `SELECT request_digest FROM projects WHERE id = $1`, id).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) { // deleted since, or an id of no project
		if err := refuseDeletedID(ctx, s.Pool, id); err != nil {
			return domain.Project{}, err
		}
		return domain.Project{}, &domain.Error{Code: domain.ECONFLICT, Field: "project_id",
			Message: "project_id " + id.String() + " is taken; a new project needs one of its own"}
	}
	if err != nil {
		return domain.Project{}, wrap(err, "read project")
	}
	if !bytes.Equal(first, digest) {
		return domain.Project{}, &domain.Error{Code: domain.ECONFLICT, Field: "project_id",
			Message: "project " + id.String() + " already exists with a different name or code"}
	}
	return getProject(ctx, s.Pool, id.String())
}

// isUniqueViolation reports whether err is a unique violation of one of
// constraints.
func isUniqueViolation(err error, constraints ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && slices.Contains(constraints, pgErr.ConstraintName)
}

func signature() object.Signature {
	sig := Committer
	sig.When = time.Now().UTC().Truncate(time.Second)
	return sig
}

// maxSlugSuffix bounds the suffixes insertProject counts from: a larger one
// is a name's own number, and one past it would overflow.
const maxSlugSuffix = 1 << 30

const takenSlugs = `SELECT slug FROM projects WHERE slug = $1 OR (slug ~>=~ $2 AND slug ~<~ $3 AND slug ~ $4)`

// insertProject inserts the row under the first free slug of base, base-2,
// base-3, …. ON CONFLICT DO NOTHING waits for a concurrent insert of the same
// slug to finish, so two creates racing for a slug cannot both take it and
// neither fails. The taken ones are read from indexes: the slug itself, and
// those in the byte range from "base-" to "base." ('.' follows '-'; ~>=~ and
// ~<~ are text_pattern_ops' operators, served by projects_slug_prefix), of
// which the pattern keeps base-N.
func insertProject(ctx context.Context, tx pgx.Tx, id uuid.UUID, name, base string, digest []byte) (string, error) {
	var taken []string
	rows, err := tx.Query(ctx, takenSlugs, base, base+"-", base+".", "^"+regexp.QuoteMeta(base)+`-[0-9]+$`)
	if err != nil {
		return "", wrap(err, "read slugs")
	}
	taken, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", wrap(err, "read slugs")
	}
	// next is the suffix to try, 1 standing for the bare base: the base when
	// it is free, else one past the highest suffix in use.
	next := 1
	if slices.Contains(taken, base) {
		for _, t := range taken {
			k := 1
			if t != base {
				k, _ = strconv.Atoi(t[len(base)+1:])
			}
			if k < maxSlugSuffix { // a name may end in any number ("x 9223372036854775807")
				next = max(next, k+1)
			}
		}
	}
	for range 1000 {
		slug := base
		if next > 1 {
			slug = base + "-" + strconv.Itoa(next)
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO projects (id, repository_id, name, slug, branch, request_digest) VALUES ($1, $1, $2, $3, $4, $5)
			ON CONFLICT (slug) DO NOTHING`, id, name, slug, domain.DefaultBranch, digest)
		if err != nil {
			return "", wrap(err, "insert project")
		}
		if tag.RowsAffected() == 1 {
			return slug, nil
		}
		next++
	}
	return "", fmt.Errorf("no free slug for %q", base)
}

// projectAt fills in what comes from git: the branch head and the code there.
func projectAt(ctx context.Context, q Querier, p projectRow) (domain.Project, error) {
	return readProjectAt(ctx, q, p, true)
}

// readProjectAt is projectAt; with keep false, code read from git is not
// kept in the script cache (readScript).
func readProjectAt(ctx context.Context, q Querier, p projectRow, keep bool) (domain.Project, error) {
	repo := NewGitStorage(ctx, q, p.repo)
	head, err := BranchHead(repo, p.br)
	if err != nil {
		return domain.Project{}, unlessDeleted(ctx, q, p, err)
	}
	out := domain.Project{
		ID: p.id.String(), Name: p.name, Slug: p.slug,
		RepositoryPath: "postgres:git_repositories/" + p.repo.String(),
		CurrentBranch:  p.br, CreatedAt: p.created.UTC(), UpdatedAt: p.updated.UTC(),
	}
	if head.IsZero() {
		return out, unlessDeleted(ctx, q, p, nil)
	}
	out.CurrentCommit = head.String()
	// Through the steps' cache: a new project's first step, when it runs
	// in this process, then reads no git object, nor does the next read of
	// the project. The cache is right even for an entry made in a
	// transaction that rolls back: a commit's hash covers its tree, so any
	// commit with that hash holds that code.
	out.CurrentCode, err = readScript(ctx, q, p.repo, head, keep)
	if err != nil {
		return domain.Project{}, unlessDeleted(ctx, q, p, err)
	}
	return out, nil
}

// unlessDeleted answers a read of project p's git data that failed (err) or
// found no branch head (err nil): when the project was deleted since its row
// was read, it is not found (a DeleteProject removes the row, the reference
// and the objects in one transaction, which a read of several statements
// can straddle: it found "object not found", or an empty project); else err.
func unlessDeleted(ctx context.Context, q Querier, p projectRow, err error) error {
	if ok, xerr := ProjectExists(ctx, q, p.id.String()); xerr == nil && !ok {
		return domain.NotFound("project", p.id.String())
	}
	return err
}

// GetProject returns a project with its current code.
func (s *Store) GetProject(ctx context.Context, id string) (domain.Project, error) {
	return getProject(ctx, s.Pool, id)
}

func getProject(ctx context.Context, q Querier, id string) (domain.Project, error) {
	p, err := loadProjectRow(ctx, q, id, false)
	if err != nil {
		return domain.Project{}, err
	}
	return projectAt(ctx, q, p)
}

func loadProjectRow(ctx context.Context, q Querier, id string, forUpdate bool) (projectRow, error) {
	lock := ""
	if forUpdate {
		lock = ` FOR UPDATE`
	}
	return lockProjectRow(ctx, q, id, lock)
}

// lockProjectRow reads a project's row with the locking clause lock (""
// for none).
func lockProjectRow(ctx context.Context, q Querier, id, lock string) (projectRow, error) {
	u, err := ParseID("project", id)
	if err != nil {
		return projectRow{}, err
	}
	sql := `SELECT ` + projectColumns + ` FROM projects WHERE id = $1` + lock
	p, err := scanProject(q.QueryRow(ctx, sql, u))
	if errors.Is(err, pgx.ErrNoRows) {
		return projectRow{}, domain.NotFound("project", id)
	}
	return p, wrap(err, "read project")
}

// listProjects reads a Page of projects: those after the row (created_at
// $1, id $2) in newest-first order, at most $3 of them (NULL: all). The
// index projects_newest holds them in that order.
const listProjects = `SELECT ` + projectColumns + ` FROM projects
	WHERE created_at <= $1 AND (created_at < $1 OR id > $2)
	ORDER BY created_at DESC, id LIMIT $3`

// ListProjects returns a page of the projects, newest first, with their
// current code, which it does not keep in the script cache (readScript).
func (s *Store) ListProjects(ctx context.Context, page Page) ([]domain.Project, error) {
	// A project deleted since a client was shown it still marks its place.
	start, err := page.start(ctx, s.Pool, "project", `SELECT created_at FROM projects WHERE id = $1
		UNION ALL SELECT created_at FROM deleted_projects WHERE id = $1 LIMIT 1`)
	if err != nil {
		return nil, err
	}
	out := []domain.Project{}
	for {
		want := page
		if page.Limit > 0 {
			want.Limit = page.Limit - len(out)
		}
		rows, err := s.Pool.Query(ctx, listProjects, start.at, start.id, want.limit())
		if err != nil {
			return nil, wrap(err, "list projects")
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projectRow, error) { return scanProject(r) })
		if err != nil {
			return nil, wrap(err, "list projects")
		}
		gone := 0
		for _, p := range list {
			full, err := readProjectAt(ctx, s.Pool, p, false)
			if domain.ErrorCodeOf(err) == domain.ENOTFOUND {
				gone++ // deleted since the list was read
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, full)
		}
		// A page is short only at the end of the list: the projects deleted
		// meanwhile are made up for from the ones after them.
		if gone == 0 || page.Limit == 0 || len(list) < want.Limit {
			return out, nil
		}
		last := list[len(list)-1]
		start = pageStart{at: pgtype.Timestamptz{Time: last.created, Valid: true}, id: last.id}
	}
}

// DeleteProject removes a project, every row under it and its repository, and
// emits project_deleted. This process's script cache forgets its code; other
// processes' caches let it age out. A deadlock with a commit is tried again
// (onceMoreAfterDeadlock).
func (s *Store) DeleteProject(ctx context.Context, id string) error {
	var repo uuid.UUID
	err := onceMoreAfterDeadlock(func() error {
		return InTx(ctx, s.Pool, func(tx pgx.Tx) error {
			// The project's diffs first: a commit, a review or a diff's test
			// run locks its diff and then the project (or a row under it); the
			// other order here was a deadlock with each, and one of the two a
			// 500.
			u, err := ParseID("project", id)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT 1 FROM diffs WHERE project_id = $1 ORDER BY id FOR UPDATE`, u); err != nil {
				return wrap(err, "lock diffs")
			}
			p, err := loadProjectRow(ctx, tx, id, true)
			if err != nil {
				return err
			}
			repo = p.repo
			// The sessions before their memory: a clear holds its session and
			// then deletes its messages and its memory; deleting the memory
			// here and then the sessions (by the cascade) was a deadlock with
			// it, which failed one of the two.
			if _, err := tx.Exec(ctx, `SELECT 1 FROM sessions WHERE project_id = $1 ORDER BY id FOR UPDATE`, p.id); err != nil {
				return wrap(err, "lock sessions")
			}
			// The agents' memory is keyed by the session, without a foreign key.
			if _, err := tx.Exec(ctx, `DELETE FROM agent_memory WHERE session_key IN
			(SELECT openai_session_key FROM sessions WHERE project_id = $1)`, p.id); err != nil {
				return wrap(err, "delete memory")
			}
			queued, err := queuedJobsOf(ctx, tx, "m.project_id = $1", p.id)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM projects WHERE id = $1 RETURNING id, created_at)
			INSERT INTO deleted_projects (id, created_at) SELECT id, created_at FROM gone`, p.id); err != nil {
				return wrap(err, "delete project")
			}
			if err := wakeJobsOfDeleted(ctx, tx, queued); err != nil {
				return err
			}
			if err := DeleteRepository(ctx, tx, p.repo); err != nil {
				return err
			}
			_, err = Emit(ctx, tx, p.id.String(), event.ProjectDeleted{ProjectID: p.id.String()})
			return err
		})
	})
	if err == nil {
		scripts.forget(repo)
	}
	return err
}

// ProjectCommits returns up to limit commits of the project's git log,
// newest first: from the branch head, or, with before set, from the first
// parent of that commit, where a log read page by page goes on.
func (s *Store) ProjectCommits(ctx context.Context, id string, limit int, before string) ([]domain.Commit, error) {
	p, err := loadProjectRow(ctx, s.Pool, id, false)
	if err != nil {
		return nil, err
	}
	return projectLog(ctx, s.Pool, p, limit, before)
}

// projectLog is ProjectCommits for the project row p, read before.
func projectLog(ctx context.Context, q Querier, p projectRow, limit int, before string) ([]domain.Commit, error) {
	repo := NewGitStorage(ctx, q, p.repo)
	var from plumbing.Hash
	var err error
	if before == "" {
		from, err = BranchHead(repo, p.br)
		if err == nil && from.IsZero() {
			err = unlessDeleted(ctx, q, p, nil)
		}
	} else {
		from, err = logAfter(repo, before)
	}
	if err != nil {
		return nil, unlessDeleted(ctx, q, p, err)
	}
	log, err := Log(repo, from, limit)
	if err != nil {
		return nil, unlessDeleted(ctx, q, p, err)
	}
	return log, nil
}
