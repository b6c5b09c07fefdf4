package api

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"
)

//go:generate go test -run ^TestCommittedDocsAreCurrent$ -count=1 -update .

// APIVersion is the version of the API contract the OpenAPI and AsyncAPI
// documents describe (the binary's version is GET /healthz's).
const APIVersion = "1.0.0"

// docsUI is the API docs page at /swagger/: Swagger UI (swagger-ui-dist,
// Apache-2.0, see docsui/VERSION) and our index.html, served by the binary so
// the page works without internet.
//
//go:embed docsui
var docsUI embed.FS

const apiDescription = `Change an OpenAI Agents SDK workflow by talking to it.

* **Errors** are RFC 9457 problem JSON (` + "`application/problem+json`" + `): 400 names the field and the reason, 404 unknown ids (malformed ones too) and unknown routes, 405 a wrong method (with ` + "`Allow`" + `), 409 conflicts, 413 bodies over 4 MiB, 415 non-JSON bodies, 503 the database is unavailable. Every other answer is ` + "`application/json`" + `.
* **Request bodies**: unknown fields are ignored; invalid JSON, data after the JSON value, invalid UTF-8, wrong types and missing required fields are 400 and change nothing.
* **Lists** are JSON arrays. ` + "`GET /projects`" + `, ` + "`GET /tests/{id}/runs`" + ` and ` + "`GET /projects/{id}/commits`" + ` page with ` + "`limit`" + ` (1 to 200) and ` + "`before`" + ` (the previous answer's last id, or sha): send both until an answer is shorter than the limit.
* **Auth**: with API_TOKEN set, every route but /healthz, /readyz and the API documents needs ` + "`Authorization: Bearer <token>`" + ` (or ` + "`X-API-Token`" + `); River UI at /riverui/ takes the token too (bearer, or as the basic-auth password) or the user admin with RIVER_UI_PASSWORD, and is never open while either is set.
* **Realtime**: Socket.IO at /socket.io/; its client and server events are described by the [AsyncAPI 3 document](/asyncapi.json). ` + "`GET /projects/{id}`" + ` answers ` + "`X-Event-Seq`" + `: subscribe with ` + "`since`" + ` set to it to miss no event.

Conventions in full: docs/api.md in the repository.`

// problemResponse documents an error status of one route.
func problemResponse(status int, description string) fuego.RouteOption {
	return option.AddResponse(status, description, fuego.Response{Type: fuego.HTTPError{}, ContentTypes: []string{problemType}})
}

// conflict documents the 409 of a route that can meet a state that moved on.
func conflict(description string) fuego.RouteOption {
	return problemResponse(http.StatusConflict, "Conflict: "+description)
}

// schemaCustomizer is Fuego's, plus what the types say that Fuego's does not
// read: `enum:"a,b"` tags, which fields are always present (a field without
// omitempty is required, in requests and answers alike), and which can be
// null (pointers, slices, maps, raw JSON: encoding/json writes a nil one as
// null).
func schemaCustomizer(name string, t reflect.Type, tag reflect.StructTag, schema *openapi3.Schema) error {
	if err := fuego.SchemaCustomizer(name, t, tag, schema); err != nil {
		return err
	}
	if enum, ok := tag.Lookup("enum"); ok {
		schema.Enum = nil
		for v := range strings.SplitSeq(enum, ",") {
			schema.Enum = append(schema.Enum, v)
		}
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		// encoding/json writes null for a nil one (json.RawMessage too).
		schema.Nullable = true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && schema.Type.Is(openapi3.TypeObject) {
		schema.Required = requiredFields(t)
	}
	return nil
}

// requiredFields are the JSON names of t's fields that encoding/json always
// writes.
func requiredFields(t reflect.Type) []string {
	var out []string
	for _, f := range reflect.VisibleFields(t) {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || (f.Anonymous && f.Type.Kind() == reflect.Struct && name == "") {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero") {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// publicOperation needs no token.
func publicOperation(path string) bool { return path == "/healthz" || path == "/readyz" }

// describe finishes the OpenAPI description Fuego generated: the problem
// responses every route can give, by rule (a body can be malformed, an id
// unknown, the token missing, the database down), the security scheme, and
// without what does not apply here (XML, the Accept header parameter,
// Fuego's controller names).
func describe(t *openapi3.T) {
	// Fuego says 3.1.0, but its schemas are kin-openapi's 3.0 model
	// (nullable, not type: [x, "null"]): say what they are.
	t.OpenAPI = "3.0.3"
	t.Info.Description = apiDescription
	if t.Components.SecuritySchemes == nil {
		t.Components.SecuritySchemes = openapi3.SecuritySchemes{}
	}
	t.Components.SecuritySchemes["bearerAuth"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme().
		WithBearerFormat("API_TOKEN").WithDescription("The API_TOKEN, when the server has one.")}
	t.Components.SecuritySchemes["apiTokenHeader"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().
		WithType("apiKey").WithIn("header").WithName("X-API-Token").WithDescription("The API_TOKEN, for clients that cannot send Authorization.")}
	t.Security = openapi3.SecurityRequirements{{"bearerAuth": {}}, {"apiTokenHeader": {}}}
	if p, ok := t.Components.Schemas["HTTPError"]; ok {
		p.Value.Description = "An RFC 9457 problem: title and status, detail says what went wrong; for a bad field, errors names it with the reason."
		p.Value.Required = []string{"title", "status"}
	}
	delete(t.Components.Schemas, "unknown-interface")

	for path, item := range t.Paths.Map() {
		for _, op := range item.Operations() {
			if i := strings.Index(op.Description, "---\n\n"); strings.HasPrefix(op.Description, "#### Controller") && i >= 0 {
				op.Description = op.Description[i+len("---\n\n"):]
			}
			op.Parameters = slices.DeleteFunc(op.Parameters, func(p *openapi3.ParameterRef) bool {
				return p.Value != nil && p.Value.In == "header" && p.Value.Name == "Accept"
			})
			op.Responses.Delete("default")
			if r := op.Responses.Value("204"); r != nil {
				r.Value.Content = nil
			}
			for _, r := range op.Responses.Map() { // Fuego's default for AddResponse: answers are JSON
				if r.Value != nil {
					delete(r.Value.Content, "application/xml")
				}
			}
			hasBody := op.RequestBody != nil
			if hasBody {
				op.RequestBody.Value.Description = "" // Fuego's names the Go type
				// A body whose fields are all optional may be omitted.
				for _, c := range op.RequestBody.Value.Content {
					if c.Schema != nil && c.Schema.Value != nil && len(c.Schema.Value.Required) == 0 {
						op.RequestBody.Value.Required = false
					}
				}
			}
			hasQuery := slices.ContainsFunc(op.Parameters, func(p *openapi3.ParameterRef) bool { return p.Value != nil && p.Value.In == "query" })
			hasID := strings.Contains(path, "{")
			add := func(status int, description string) {
				key := strconv.Itoa(status)
				if op.Responses.Value(key) != nil && status != http.StatusBadRequest && status != http.StatusInternalServerError {
					return // the route's own description of it
				}
				content := openapi3.NewContentWithSchemaRef(openapi3.NewSchemaRef("#/components/schemas/HTTPError", nil), []string{problemType})
				op.Responses.Set(key, &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription(description).WithContent(content)})
			}
			op.Responses.Delete("400")
			if hasBody || hasQuery {
				add(http.StatusBadRequest, "Bad Request: malformed or invalid input; errors names the field and the reason")
			}
			if !publicOperation(path) {
				add(http.StatusUnauthorized, "Unauthorized: API_TOKEN is set and the request lacks it")
				op.Security = nil
			} else {
				op.Security = &openapi3.SecurityRequirements{}
			}
			if hasID {
				add(http.StatusNotFound, "Not Found: no such id (a malformed id included)")
			}
			// Every route reads what body a request has (middleware.go).
			if hasBody {
				add(http.StatusRequestEntityTooLarge, "Content Too Large: the body is over 4 MiB, or code over 1 MiB")
			} else {
				add(http.StatusRequestEntityTooLarge, "Content Too Large: the body (none is needed) is over 4 MiB")
			}
			add(http.StatusUnsupportedMediaType, "Unsupported Media Type: the body is not JSON")
			add(http.StatusInternalServerError, "Internal Server Error: a bug; the server logged the details")
			if path != "/healthz" {
				add(http.StatusServiceUnavailable, "Service Unavailable: the database is unavailable; retry shortly")
			}
		}
	}
	if get := t.Paths.Value("/projects/{id}"); get != nil && get.Get != nil {
		if ok := get.Get.Responses.Value("200"); ok != nil {
			ok.Value.Headers = openapi3.Headers{EventSeqHeader: &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Description: "The outbox position this answer reflects: subscribe on Socket.IO with since set to it to miss no later event.",
				Schema:      openapi3.NewInt64Schema().NewRef(),
			}}}}
		}
	}
}

// documents serves the finished OpenAPI and AsyncAPI documents and the docs
// page.
func (s *Server) serveDocuments() error {
	openapiJSON, err := s.OpenAPIDocument()
	if err != nil {
		return err
	}
	asyncapiJSON, err := AsyncAPIDocument()
	if err != nil {
		return err
	}
	ui, err := fs.Sub(docsUI, "docsui")
	if err != nil {
		return err
	}
	mux := s.fuego.Mux
	mux.Handle("GET /swagger/openapi.json", serveJSONDocument(openapiJSON))
	mux.Handle("GET /asyncapi.json", serveJSONDocument(asyncapiJSON))
	files := http.FileServerFS(ui)
	mux.Handle("GET /swagger/", http.StripPrefix("/swagger/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The file server's own 404 is plain text; every error here is
		// problem JSON.
		if name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/"); name != "" {
			if _, err := fs.Stat(ui, name); err != nil {
				writeProblemf(w, http.StatusNotFound, "no page /swagger/%s", name)
				return
			}
		}
		files.ServeHTTP(w, r)
	})))
	return nil
}

func serveJSONDocument(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(doc)
	})
}

// OpenAPIDocument is the OpenAPI 3 description of the REST API, as served
// at /swagger/openapi.json and kept in docs/openapi.json.
func (s *Server) OpenAPIDocument() ([]byte, error) {
	s.describeOnce.Do(func() {
		spec := s.fuego.OutputOpenAPISpec()
		describe(spec)
		s.openapiJSON, s.openapiErr = json.MarshalIndent(spec, "", "  ")
		s.openapiJSON = append(s.openapiJSON, '\n')
	})
	return s.openapiJSON, s.openapiErr
}
