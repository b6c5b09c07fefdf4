package api

import (
	"net/http"

	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/vibecode"
)

func (s *Server) registerSessions() {
	f := s.fuego
	tags := option.Tags("sessions")
	fuego.Post(f, "/projects/{id}/sessions", s.createSession, tags,
		option.Summary("Start a session, or return the existing one for the same memory key"),
		option.Description("201 when created, 200 when the session for that key (global, or the given node) exists. The body is optional."),
		option.AddResponse(http.StatusCreated, "Created", fuego.Response{Type: domain.VibecodeSession{}}))
	fuego.Get(f, "/projects/{id}/sessions", s.listSessions, tags, option.Summary("A project's sessions, oldest first"))
	fuego.Get(f, "/sessions/{id}", s.getSession, tags, option.Summary("One session"))
	fuego.Delete(f, "/sessions/{id}", s.clearSession, tags,
		option.Summary("Clear a session: its messages and the agents' memory"), option.DefaultStatusCode(http.StatusNoContent))

	mtags := option.Tags("messages")
	fuego.Post(f, "/sessions/{id}/messages", s.postMessage, mtags,
		option.Summary("Send a prompt to the VibeCoder"),
		option.Description("Stores the message and enqueues a VibecodeJob in one transaction; progress arrives as Socket.IO events. Sending the same message_id again returns the first answer."),
		option.DefaultStatusCode(http.StatusAccepted),
		conflict("message_id was used before for another prompt or session"))
	fuego.Get(f, "/sessions/{id}/messages", s.listMessages, mtags, option.Summary("The conversation, oldest first"))
	fuego.Get(f, "/messages/{id}", s.getMessage, mtags, option.Summary("One message, with its token usage and cost (token_usage.cost_usd)"))
	fuego.Get(f, "/messages/{id}/full", s.getFullMessage, mtags, option.Summary("A message with the raw OpenAI responses behind it"))

	fuego.Get(f, "/jobs/{id}", s.getJob, option.Tags("jobs"), option.Summary("An asynchronous job as River records it"))
}

func (s *Server) createSession(c fuego.ContextWithBody[domain.NewSession]) (domain.VibecodeSession, error) {
	in, err := readBody(s, c)
	if err != nil {
		return domain.VibecodeSession{}, err
	}
	sess, created, err := s.opts.Store.CreateSession(c.Context(), c.PathParam("id"), in, vibecode.CheckNode)
	if err == nil && created {
		c.SetStatus(http.StatusCreated)
	}
	return sess, err
}

func (s *Server) listSessions(c fuego.ContextNoBody) ([]domain.VibecodeSession, error) {
	return s.opts.Store.ListSessions(c.Context(), c.PathParam("id"))
}

func (s *Server) getSession(c fuego.ContextNoBody) (domain.VibecodeSession, error) {
	return s.opts.Store.GetSession(c.Context(), c.PathParam("id"))
}

func (s *Server) clearSession(c fuego.ContextNoBody) (any, error) {
	return nil, s.opts.Store.ClearSession(c.Context(), c.PathParam("id"))
}

func (s *Server) postMessage(c fuego.ContextWithBody[domain.NewMessage]) (domain.MessageAccepted, error) {
	in, err := readBody(s, c)
	if err != nil {
		return domain.MessageAccepted{}, err
	}
	return s.opts.Store.SubmitMessage(c.Context(), c.PathParam("id"), in, s.enqueueVibecode)
}

func (s *Server) listMessages(c fuego.ContextNoBody) ([]domain.ConversationMessage, error) {
	return s.opts.Store.ListMessages(c.Context(), c.PathParam("id"))
}

func (s *Server) getMessage(c fuego.ContextNoBody) (domain.ConversationMessage, error) {
	m, err := s.opts.Store.GetMessage(c.Context(), c.PathParam("id"))
	return m.ConversationMessage, err
}

func (s *Server) getFullMessage(c fuego.ContextNoBody) (domain.FullMessage, error) {
	return s.opts.Store.GetMessage(c.Context(), c.PathParam("id"))
}
