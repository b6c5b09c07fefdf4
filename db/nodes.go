package db

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// ProjectNodes returns the agents of a project's current code. A commit's
// agents never change, so they are parsed once per commit and kept in
// commit_nodes: after the first request of a commit, a request is one query.
func (s *Store) ProjectNodes(ctx context.Context, id string) ([]pyast.AgentNode, error) {
	nodes, parseErr, err := s.projectNodes(ctx, id)
	if parseErr != nil {
		return nil, domain.Errorf(domain.ECONFLICT, "the project's current code does not parse: %v", parseErr)
	}
	return nodes, err
}

// projectNodes is ProjectNodes with the error parsing the code apart.
func (s *Store) projectNodes(ctx context.Context, id string) (nodes []pyast.AgentNode, parseError error, err error) {
	u, err := ParseID("project", id)
	if err != nil {
		return nil, nil, err
	}
	var (
		repo       uuid.UUID
		head       *string
		raw        []byte
		parseErr   *string
		remembered bool
	)
	err = s.Pool.QueryRow(ctx, `
		SELECT p.repository_id, r.target, n.nodes, n.parse_error, n.commit IS NOT NULL
		FROM projects p
		LEFT JOIN git_references r ON r.repository_id = p.repository_id AND r.name = 'refs/heads/' || p.branch
		LEFT JOIN commit_nodes n ON n.repository_id = p.repository_id AND n.commit = r.target
		WHERE p.id = $1`, u).Scan(&repo, &head, &raw, &parseErr, &remembered)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, domain.NotFound("project", id)
	}
	if err != nil {
		return nil, nil, wrap(err, "read project nodes")
	}
	if head == nil || !plumbing.IsHash(*head) {
		return []pyast.AgentNode{}, nil, nil
	}
	if !remembered {
		raw, parseErr, err = s.parseNodes(ctx, repo, plumbing.NewHash(*head))
		if err != nil {
			return nil, nil, unlessDeleted(ctx, s.Pool, projectRow{id: u}, err)
		}
	}
	if parseErr != nil {
		return nil, errors.New(*parseErr), nil
	}
	nodes = []pyast.AgentNode{}
	if err := json.Unmarshal(raw, &nodes); err != nil {
		return nil, nil, err
	}
	return nodes, nil, nil
}

// parseNodes parses the agents of a commit and keeps them.
func (s *Store) parseNodes(ctx context.Context, repo uuid.UUID, commit plumbing.Hash) (json.RawMessage, *string, error) {
	code, err := ReadFile(NewGitStorage(ctx, s.Pool, repo), commit, domain.ScriptPath)
	if err != nil {
		return nil, nil, err
	}
	var raw json.RawMessage
	var parseErr *string
	nodes, err := pyast.ParseAgents(code)
	if err != nil {
		msg := err.Error()
		parseErr = &msg
	} else {
		if nodes == nil {
			nodes = []pyast.AgentNode{}
		}
		if raw, err = json.Marshal(nodes); err != nil {
			return nil, nil, err
		}
	}
	_, err = s.Pool.Exec(ctx, `INSERT INTO commit_nodes (repository_id, commit, nodes, parse_error) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, repo, commit.String(), raw, parseErr)
	return raw, parseErr, wrap(err, "store commit nodes")
}
