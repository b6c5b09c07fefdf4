package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-fuego/fuego"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/internal/pgtext"
)

// readBody is the one decoder of JSON request bodies. Unknown fields are
// ignored and logged at debug, as FastAPI does (the frontend was written
// against it); everything else a lenient parser would let through is a 400:
// bytes that are not UTF-8 (encoding/json would replace them silently) and
// data after the JSON value (encoding/json's Decoder stops at the first
// value). An empty body decodes to B's zero value: every body of the API is
// optional or has required fields that its Validate checks.
func readBody[B any](s *Server, c fuego.ContextWithBody[B]) (B, error) {
	var out B
	r := c.Request()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return out, err // over MaxBodyBytes: 413
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return out, nil
	}
	if !utf8.Valid(raw) {
		return out, domain.Errorf(domain.EINVALID, "request body is not valid UTF-8 (first bad byte at offset %d)", invalidUTF8At(raw))
	}
	src := raw
	unknown := unknownFields(reflect.TypeFor[B](), raw)
	if caseOf(reflect.TypeFor[B](), unknown) {
		// encoding/json takes a key for the field it names in another case
		// (NAME for name, APPROVED for approved); FastAPI, which the API
		// follows, ignores it as unknown: decode without the unknown keys.
		src = withoutKeys(raw, unknown)
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&out); err != nil {
		return out, err // syntax and type errors: 400, mapped by classify
	}
	if end := dec.InputOffset(); len(bytes.TrimSpace(src[end:])) > 0 {
		at := int(end) + len(src[end:]) - len(bytes.TrimLeft(src[end:], " \t\r\n"))
		return out, domain.Errorf(domain.EINVALID, "request body has data after the JSON value (at offset %d); send exactly one JSON object", at)
	}
	if at := loneSurrogateAt(raw); at >= 0 {
		return out, domain.Errorf(domain.EINVALID, "request body has a \\u escape of a lone UTF-16 surrogate at offset %d, which is not a character", at)
	}
	if field := nulField(reflect.ValueOf(out), ""); field != "" {
		return out, domain.Invalid(field, "must not contain NUL (\\u0000), a control character that cannot be stored")
	}
	if len(unknown) > 0 {
		s.opts.Log.DebugContext(r.Context(), "request body: unknown fields ignored",
			"method", r.Method, "path", r.URL.Path, "fields", unknown)
	}
	return out, nil
}

// caseOf reports whether one of the keys names a field of t in another case.
func caseOf(t reflect.Type, keys []string) bool {
	for _, k := range keys {
		if slices.ContainsFunc(jsonFields(t), func(f string) bool { return strings.EqualFold(f, k) }) {
			return true
		}
	}
	return false
}

// withoutKeys is the JSON object raw without the top-level keys given.
func withoutKeys(raw []byte, keys []string) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	for _, k := range keys {
		delete(obj, k)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// loneSurrogateAt finds a \uD800-\uDFFF escape that is not half of a
// surrogate pair (encoding/json would turn it into U+FFFD silently), or -1.
// raw is valid JSON: the decoder read it. A \u0000 is left to nulField,
// which names its field.
func loneSurrogateAt(raw []byte) int {
	for at := pgtext.EscapeAt(raw, 0); at >= 0; at = pgtext.EscapeAt(raw, at+6) {
		if string(raw[at:at+6]) != `\u0000` {
			return at
		}
	}
	return -1
}

// nulField names the first string of v, a decoded body, that holds a NUL,
// or is "". PostgreSQL stores a NUL neither in text nor in jsonb: the
// insert would fail, a 500, instead of the input being refused. Bodies are
// structs of strings and pointers (to strings, numbers and booleans).
func nulField(v reflect.Value, name string) string {
	switch v.Kind() {
	case reflect.String:
		if strings.IndexByte(v.String(), 0) >= 0 {
			return name
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return nulField(v.Elem(), name)
		}
	case reflect.Struct:
		for _, sf := range reflect.VisibleFields(v.Type()) {
			fname, ok := jsonName(sf)
			if !ok {
				continue
			}
			fv, err := v.FieldByIndexErr(sf.Index)
			if err != nil {
				continue // under a nil embedded pointer
			}
			if name != "" {
				fname = name + "." + fname
			}
			if f := nulField(fv, fname); f != "" {
				return f
			}
		}
	}
	return ""
}

// unknownFields returns the top-level keys of a JSON object that are not the
// JSON name of a field of t, a struct, exactly (case included).
func unknownFields(t reflect.Type, raw []byte) []string {
	if t.Kind() != reflect.Struct {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	known := jsonFields(t)
	var out []string
	for k := range obj {
		if !slices.Contains(known, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

var fieldCache sync.Map // reflect.Type → []string

// jsonFields lists the JSON names of a struct's fields, embedded structs'
// included, as encoding/json decodes them.
func jsonFields(t reflect.Type) []string {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]string)
	}
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if name, ok := jsonName(f); ok {
			names = append(names, name)
		}
	}
	fieldCache.Store(t, names)
	return names
}

// jsonName is the JSON name under which encoding/json decodes f, if it
// decodes f itself (not an embedded struct's fields in its place).
func jsonName(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if !f.IsExported() || (f.Anonymous && f.Type.Kind() == reflect.Struct && name == "") {
		return "", false
	}
	switch name {
	case "-":
		return "", false
	case "":
		name = f.Name
	}
	return name, true
}

// queryParam reads an optional query parameter. Given more than once it is a
// 400: which of the values was meant is not for the server to guess.
func queryParam(r *http.Request, name string) (string, error) {
	values := r.URL.Query()[name]
	if len(values) > 1 {
		return "", domain.Invalid(name, "is given %d times; give it once", len(values))
	}
	if len(values) == 0 {
		return "", nil
	}
	return values[0], nil
}

// queryBool reads an optional boolean query parameter: absent is false, and
// anything strconv.ParseBool does not read is a 400 naming the parameter.
func queryBool(r *http.Request, name string) (bool, error) {
	v, err := queryParam(r, name)
	if err != nil || v == "" {
		return false, err
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, domain.Invalid(name, "must be true or false, got %q", v)
	}
	return b, nil
}
