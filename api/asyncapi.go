package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/vibegrapher/vibegrapher/domain/event"
)

// openapiSchemaFormat is the schema format of every payload: the OpenAPI 3.0
// Schema Object the REST description uses, generated from the same Go types.
const openapiSchemaFormat = "application/vnd.oai.openapi+json;version=3.0.0"

var asyncapiDoc = sync.OnceValues(buildAsyncAPI)

// AsyncAPIDocument is the AsyncAPI 3.0 description of the Socket.IO API, as
// served at /asyncapi.json and kept in docs/asyncapi.json.
func AsyncAPIDocument() ([]byte, error) { return asyncapiDoc() }

// EventSchema is the schema of what the server sends under name, as clients
// receive it (an outbox event's fields plus seq and project_id; heartbeat,
// error, subscribe_ack), or nil for an unknown name. Tests check every
// emitted event against it.
func EventSchema(name string) (*openapi3.Schema, error) {
	schemas, err := eventSchemas()
	if err != nil {
		return nil, err
	}
	return schemas[name], nil
}

var eventSchemas = sync.OnceValues(func() (map[string]*openapi3.Schema, error) {
	out := map[string]*openapi3.Schema{}
	for _, ev := range event.All() {
		s, err := payloadSchema(ev, true)
		if err != nil {
			return nil, err
		}
		out[ev.EventName()] = s
	}
	for name, v := range map[string]any{"heartbeat": event.Heartbeat{}, "error": event.SocketError{}, "subscribe_ack": event.SubscribeAck{}} {
		s, err := payloadSchema(v, false)
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
})

// payloadSchema generates v's schema with the REST description's rules;
// outbox events get the seq and project_id the realtime role adds.
func payloadSchema(v any, outbox bool) (*openapi3.Schema, error) {
	gen := openapi3gen.NewGenerator(openapi3gen.SchemaCustomizer(schemaCustomizer))
	ref, err := gen.NewSchemaRefForValue(v, nil)
	if err != nil {
		return nil, fmt.Errorf("schema of %T: %w", v, err)
	}
	s := ref.Value
	s.Description = ""
	if outbox {
		s.Properties["seq"] = openapi3.NewInt64Schema().WithMin(1).NewRef()
		s.Properties["seq"].Value.Description = "The event's position in the outbox; subscribe with since set to the last one seen to miss nothing"
		s.Properties["project_id"] = openapi3.NewStringSchema().NewRef()
		s.Properties["project_id"].Value.Description = "The project the event is about"
		s.Required = append(s.Required, "seq", "project_id")
		slices.Sort(s.Required)
		s.Required = slices.Compact(s.Required)
	}
	return s, nil
}

type jsonObject = map[string]any

func ref(to string) jsonObject { return jsonObject{"$ref": to} }

func buildAsyncAPI() ([]byte, error) {
	schemas, err := eventSchemas()
	if err != nil {
		return nil, err
	}
	messages := jsonObject{}
	payload := func(s *openapi3.Schema) jsonObject {
		return jsonObject{"schemaFormat": openapiSchemaFormat, "schema": s}
	}
	projectMessages, projectOps := jsonObject{}, jsonObject{}
	for _, ev := range event.All() {
		name := ev.EventName()
		messages[name] = jsonObject{"name": name, "summary": ev.EventSummary(), "payload": payload(schemas[name])}
		projectMessages[name] = ref("#/components/messages/" + name)
		projectOps["send_"+name] = jsonObject{
			"action": "send", "channel": ref("#/channels/project"), "summary": ev.EventSummary(),
			"messages": []any{ref("#/channels/project/messages/" + name)},
		}
	}
	messages["heartbeat"] = jsonObject{"name": "heartbeat", "summary": "The server is alive: every HEARTBEAT_INTERVAL (30 s), once per room the socket is in, with that project_id; once without project_id to a socket in no room.", "payload": payload(schemas["heartbeat"])}
	messages["error"] = jsonObject{"name": "error", "summary": "A request of this socket was refused (bad project id or since, unknown or deleted project, outbox unreadable).", "payload": payload(schemas["error"])}
	clientSchema := func(v any) (*openapi3.Schema, error) { return payloadSchema(v, false) }
	sub, err := clientSchema(event.SubscribeRequest{})
	if err != nil {
		return nil, err
	}
	unsub, err := clientSchema(event.UnsubscribeRequest{})
	if err != nil {
		return nil, err
	}
	ack := schemas["subscribe_ack"]
	bareID := openapi3.NewStringSchema()
	bareID.Description = "The project id alone"
	oneOf := func(s *openapi3.Schema) *openapi3.Schema {
		return openapi3.NewOneOfSchema(s, bareID)
	}
	for _, m := range []struct {
		name, summary string
		schema        *openapi3.Schema
	}{
		{"subscribe", "Join the room project_{project_id}; with since, first receive every later event of the project, in order, then live events. Answers the ack, if any, with subscribe_ack.", oneOf(sub)},
		{"join_project", "The same as subscribe.", oneOf(sub)},
		{"unsubscribe", "Leave the project's room. Answers the ack, if any, with subscribe_ack.", oneOf(unsub)},
		{"leave_project", "The same as unsubscribe.", oneOf(unsub)},
	} {
		messages[m.name] = jsonObject{"name": m.name, "summary": m.summary, "payload": payload(m.schema)}
	}
	messages["subscribe_ack"] = jsonObject{"name": "subscribe_ack", "summary": "The acknowledgement of subscribe, join_project, unsubscribe or leave_project.", "payload": payload(ack)}

	handshakeQuery := jsonObject{
		"type": "object",
		"properties": jsonObject{
			"project_id": jsonObject{"type": "string", "description": "Subscribe at connection, as subscribe does"},
			"since":      jsonObject{"type": "string", "description": "With project_id: the last seq seen, as subscribe's since"},
			"token":      jsonObject{"type": "string", "description": "The API token, for clients that cannot send auth"},
		},
	}
	handshakeAuth := jsonObject{
		"type":       "object",
		"properties": jsonObject{"token": jsonObject{"type": "string", "description": "The API_TOKEN, when the server has one"}},
	}
	clientOps := jsonObject{}
	clientMessages := jsonObject{}
	for _, name := range []string{"subscribe", "join_project", "unsubscribe", "leave_project"} {
		clientMessages[name] = ref("#/components/messages/" + name)
		clientOps["receive_"+name] = jsonObject{
			"action": "receive", "channel": ref("#/channels/requests"),
			"messages": []any{ref("#/channels/requests/messages/" + name)},
			"reply":    jsonObject{"channel": ref("#/channels/requests"), "messages": []any{ref("#/channels/requests/messages/subscribe_ack")}},
		}
	}
	clientMessages["subscribe_ack"] = ref("#/components/messages/subscribe_ack")
	ops := jsonObject{}
	for k, v := range projectOps {
		ops[k] = v
	}
	for k, v := range clientOps {
		ops[k] = v
	}
	ops["send_heartbeat"] = jsonObject{"action": "send", "channel": ref("#/channels/socket"), "messages": []any{ref("#/channels/socket/messages/heartbeat")}}
	ops["send_error"] = jsonObject{"action": "send", "channel": ref("#/channels/socket"), "messages": []any{ref("#/channels/socket/messages/error")}}

	doc := jsonObject{
		"asyncapi": "3.0.0",
		"info": jsonObject{
			"title":   "Vibegrapher realtime API",
			"version": APIVersion,
			"description": "Socket.IO (default namespace, path /socket.io/, WebSocket and HTTP long-polling) on the origin of the REST API. " +
				"A client subscribes to a project and receives its events: each is an outbox row delivered once and in order, with its seq; " +
				"subscribe with since (the last seq seen, or the X-Event-Seq header of GET /projects/{id}) to replay what was missed. " +
				"Handshake: auth {token} (or the token query parameter) when the server has an API_TOKEN; the query may carry project_id and since to subscribe at connection. " +
				"Payload schemas are OpenAPI 3.0 Schema Objects generated from the Go types the events are emitted from (domain/event). " +
				"An event about an entity carries <entity>_id. The REST API: /swagger/openapi.json.",
		},
		"defaultContentType": "application/json",
		"servers": jsonObject{
			"vibegrapher": jsonObject{
				"host": "localhost:8000", "protocol": "ws", "pathname": "/socket.io/",
				"description":      "Socket.IO v4 (Engine.IO v4); also HTTP long-polling on the same path. The host is the REST API's.",
				"security":         []any{ref("#/components/securitySchemes/handshakeToken")},
				"x-socketio-auth":  handshakeAuth,
				"x-socketio-query": handshakeQuery,
			},
		},
		"channels": jsonObject{
			"project": jsonObject{
				"address":     "project_{project_id}",
				"title":       "A project's room",
				"description": "Every event about one project, once and in order of seq.",
				"parameters":  jsonObject{"project_id": jsonObject{"description": "The project's UUID"}},
				"messages":    projectMessages,
			},
			"requests": jsonObject{
				"address":     nil,
				"title":       "Client requests",
				"description": "What a client emits to join and leave project rooms; with an ack callback it gets subscribe_ack.",
				"messages":    clientMessages,
			},
			"socket": jsonObject{
				"address":     nil,
				"title":       "One socket",
				"description": "Messages to one connection: the heartbeat of sockets in no room, and request errors.",
				"messages":    jsonObject{"heartbeat": ref("#/components/messages/heartbeat"), "error": ref("#/components/messages/error")},
			},
		},
		"operations": ops,
		"components": jsonObject{
			"messages": messages,
			"securitySchemes": jsonObject{
				"handshakeToken": jsonObject{
					"type": "httpApiKey", "in": "query", "name": "token",
					"description": "The API_TOKEN, when the server has one: in the Socket.IO handshake's auth {token}, or as the token query parameter.",
				},
			},
		},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
