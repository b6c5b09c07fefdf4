package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/api"
	events "github.com/vibegrapher/vibegrapher/domain/event"
)

var update = flag.Bool("update", false, "rewrite docs/openapi.json and docs/asyncapi.json from the code")

// TestCommittedDocsAreCurrent keeps the repository's copy of the API
// documents equal to what the binary serves; `make docs` rewrites them.
func TestCommittedDocsAreCurrent(t *testing.T) {
	openapiDoc, err := api.New(api.Options{}).OpenAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	asyncapiDoc, err := api.AsyncAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"openapi.json": openapiDoc, "asyncapi.json": asyncapiDoc} {
		path := filepath.Join("..", "docs", name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v; run `make docs`", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/%s is stale: run `make docs` and commit it", name)
		}
	}
}

// TestOpenAPIDocumentIsValid loads the served description with kin-openapi's
// validator and checks that every route documents its answers and problems.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	res := s.do("GET", "/swagger/openapi.json", nil)
	checkContentType(t, "openapi.json", res)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			var success, problems []string
			for code, r := range op.Responses.Map() {
				switch {
				case code == "204":
				case code < "400":
					if r.Value.Content.Get("application/json") == nil {
						t.Errorf("%s %s %s has no JSON schema", method, path, code)
					}
					success = append(success, code)
				default:
					if r.Value.Content.Get("application/problem+json") == nil || len(r.Value.Content) != 1 {
						t.Errorf("%s %s %s is not only problem JSON", method, path, code)
					}
					problems = append(problems, code)
				}
			}
			if len(success) == 0 && op.Responses.Value("204") == nil {
				t.Errorf("%s %s documents no success", method, path)
			}
			if !slices.Contains(problems, "500") || (path != "/healthz" && !slices.Contains(problems, "503")) {
				t.Errorf("%s %s documents problems %v", method, path, problems)
			}
			if strings.Contains(path, "{id}") && !slices.Contains(problems, "404") {
				t.Errorf("%s %s has an id and no 404", method, path)
			}
			if op.RequestBody != nil && !slices.Contains(problems, "400") {
				t.Errorf("%s %s has a body and no 400", method, path)
			}
		}
	}
	// The Diff answered by refine-message carries refined_message.
	if _, ok := doc.Components.Schemas["RefinedDiff"].Value.Properties["refined_message"]; !ok {
		t.Errorf("RefinedDiff lacks refined_message")
	}
}

// TestDocsPageWorksOffline: the page and everything it loads come from the
// server itself.
func TestDocsPageWorksOffline(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(o *api.Options) { o.APIToken = "tok" }) // the docs are public
	page := s.do("GET", "/swagger/", nil)
	if page.Status != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("docs page = %d %v", page.Status, page.Header)
	}
	html := string(page.Body)
	if strings.Contains(html, "https://") || strings.Contains(html, "http://") {
		t.Errorf("the page loads something from another origin: %s", html)
	}
	for _, asset := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "init.js", "openapi.json", "../asyncapi.json", "asyncapi.html"} {
		if !strings.Contains(html, asset) {
			t.Errorf("the page does not reference %s", asset)
		}
		// Resolved against the page's URL, as a browser does before it
		// sends the request (an unclean path is an unknown route).
		res := s.do("GET", path.Join("/swagger/", asset), nil)
		if res.Status != 200 || len(res.Body) == 0 {
			t.Errorf("%s = %d", asset, res.Status)
		}
	}
	if res := s.do("GET", "/swagger/index.html", nil); res.Status != 200 || !strings.Contains(string(res.Body), "swagger-ui-bundle.js") {
		t.Errorf("/swagger/index.html = %d", res.Status)
	}
	for _, script := range []string{"init.js", "asyncapi.html", "asyncapi.js"} {
		if res := s.do("GET", "/swagger/"+script, nil); res.Status != 200 || strings.Contains(string(res.Body), "http") {
			t.Errorf("%s = %d, or reaches out: %s", script, res.Status, res.Body)
		}
	}
	var async struct {
		AsyncAPI string `json:"asyncapi"`
	}
	res := s.do("GET", "/asyncapi.json", nil)
	checkContentType(t, "asyncapi.json", res)
	res.json(t, &async)
	if async.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi.json declares %q", async.AsyncAPI)
	}
}

// TestAsyncAPIDescribesEveryEvent: every event type of domain/event and
// every client request is in the document.
func TestAsyncAPIDescribesEveryEvent(t *testing.T) {
	t.Parallel()
	raw, err := api.AsyncAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Messages map[string]struct {
				Payload struct {
					SchemaFormat string          `json:"schemaFormat"`
					Schema       json.RawMessage `json:"schema"`
				} `json:"payload"`
			} `json:"messages"`
		} `json:"components"`
		Operations map[string]struct {
			Action string `json:"action"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	names := []string{"subscribe", "join_project", "unsubscribe", "leave_project", "heartbeat", "error"}
	for _, ev := range events.All() {
		names = append(names, ev.EventName())
	}
	for _, name := range names {
		m, ok := doc.Components.Messages[name]
		if !ok || len(m.Payload.Schema) == 0 {
			t.Errorf("no message %s with a payload schema", name)
		}
	}
	for _, ev := range events.All() {
		if doc.Operations["send_"+ev.EventName()].Action != "send" {
			t.Errorf("no send operation for %s", ev.EventName())
		}
	}
}

// checkEmittedEvents validates every row of a test database's outbox against
// the AsyncAPI schema of its event, as the realtime role delivers it (with
// seq and project_id). Test servers call it when their test ends, so every
// event the suite emits is checked.
func checkEmittedEvents(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT seq, project_id, name, payload FROM events ORDER BY seq`)
	if err != nil {
		t.Errorf("read the outbox: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var project, name string
		var payload []byte
		if err := rows.Scan(&seq, &project, &name, &payload); err != nil {
			t.Error(err)
			return
		}
		var fields map[string]any
		if err := json.Unmarshal(payload, &fields); err != nil {
			t.Errorf("event %d %s: %v", seq, name, err)
			continue
		}
		fields["seq"] = float64(seq)
		fields["project_id"] = project
		checkEvent(t, name, fields)
	}
	if err := rows.Err(); err != nil {
		t.Error(err)
	}
}

// checkEvent validates one event payload, as a client got it, against the
// AsyncAPI document: the schema's types and required fields, and no field
// the schema does not describe.
func checkEvent(t testing.TB, name string, payload map[string]any) {
	t.Helper()
	validated.Store(name, true)
	schema, err := api.EventSchema(name)
	if err != nil {
		t.Fatal(err)
	}
	if schema == nil {
		t.Errorf("event %q is not in the AsyncAPI document", name)
		return
	}
	if err := schema.VisitJSON(payload, openapi3.MultiErrors()); err != nil {
		t.Errorf("event %s does not match its AsyncAPI schema: %v\npayload: %v", name, err, payload)
	}
	for k := range payload {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("event %s carries %q, which its AsyncAPI schema does not describe", name, k)
		}
	}
	checkEntityIDs(t, name, payload)
}

// checkEntityIDs: an event about an entity carries <entity>_id. An entity
// at the top (its own id) has a twin *_id field; an entity under key k (a
// JSON object with an id) has k_id beside it.
func checkEntityIDs(t testing.TB, name string, payload map[string]any) {
	t.Helper()
	if id, ok := payload["id"].(string); ok {
		twin := false
		for k, v := range payload {
			twin = twin || (k != "id" && strings.HasSuffix(k, "_id") && v == id)
		}
		if !twin {
			t.Errorf("event %s carries an entity (id %s) without its <entity>_id", name, id)
		}
	}
	for k, v := range payload {
		if obj, ok := v.(map[string]any); ok {
			if id, ok := obj["id"].(string); ok && payload[k+"_id"] != id {
				t.Errorf("event %s carries %s (id %s) with %s_id = %v", name, k, id, k, payload[k+"_id"])
			}
		}
	}
}
