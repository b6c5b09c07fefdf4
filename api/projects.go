package api

import (
	"cmp"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

func (s *Server) registerProjects() {
	f := s.fuego
	tags := option.Tags("projects")
	fuego.Get(f, "/projects", s.listProjects, tags, option.Summary("List projects, newest first"),
		pageParams("projects", "all of them",
			"The id of the last project of the previous page: the answer goes on after it. 400 if no project has that id (it was deleted: start again)."))
	fuego.Post(f, "/projects", s.createProject, tags, option.Summary("Create a project"),
		option.DefaultStatusCode(http.StatusCreated),
		option.Description("The project's git history starts with a commit of `code`, or of a sample Agents SDK workflow when `code` is omitted. The slug is made from the name and made unique with -2, -3, …"))
	fuego.Get(f, "/projects/{id}", s.getProject, tags, option.Summary("A project with its current code"),
		option.Description("The X-Event-Seq header is the outbox position this answer reflects: subscribe on Socket.IO with `since` set to it to miss no event that follows."))
	fuego.Delete(f, "/projects/{id}", s.deleteProject, tags, option.Summary("Delete a project and everything under it"),
		option.DefaultStatusCode(http.StatusNoContent))
	fuego.Get(f, "/projects/{id}/commits", s.listCommits, tags, option.Summary("The project's git log, newest first"),
		option.Description(fmt.Sprintf("Follows first parents from the branch head, %d commits unless `limit` says fewer; page through a longer history with `before` set to the last SHA of each answer, until an answer is shorter than the limit.", MaxLimit)),
		pageParams("commits", strconv.Itoa(MaxLimit),
			"The full SHA of the last commit of the previous page: the answer starts at its first parent (empty after the first commit). 400 if it is not a commit of this project."))
}

func (s *Server) listProjects(c fuego.ContextNoBody) ([]domain.Project, error) {
	page, err := queryPage(c.Request())
	if err != nil {
		return nil, err
	}
	return s.opts.Store.ListProjects(c.Context(), page)
}

func (s *Server) createProject(c fuego.ContextWithBody[domain.NewProject]) (domain.Project, error) {
	in, err := readBody(s, c)
	if err != nil {
		return domain.Project{}, err
	}
	return s.opts.Store.CreateProject(c.Context(), in)
}

func (s *Server) getProject(c fuego.ContextNoBody) (domain.Project, error) {
	// The seq is read first: every event after it may or may not be in the
	// answer, and a client that subscribes with since=seq gets all of them.
	seq, err := db.LatestSeq(c.Context(), s.opts.Store.Pool)
	if err != nil {
		return domain.Project{}, err
	}
	p, err := s.opts.Store.GetProject(c.Context(), c.PathParam("id"))
	if err == nil {
		c.Response().Header().Set(EventSeqHeader, strconv.FormatInt(seq, 10))
	}
	return p, err
}

// EventSeqHeader carries the outbox position a REST answer reflects.
const EventSeqHeader = "X-Event-Seq"

func (s *Server) deleteProject(c fuego.ContextNoBody) (any, error) {
	return nil, s.opts.Store.DeleteProject(c.Context(), c.PathParam("id"))
}

func (s *Server) listCommits(c fuego.ContextNoBody) ([]domain.Commit, error) {
	page, err := queryPage(c.Request())
	if err != nil {
		return nil, err
	}
	return s.opts.Store.ProjectCommits(c.Context(), c.PathParam("id"), cmp.Or(page.Limit, MaxLimit), page.Before)
}
