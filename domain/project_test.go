package domain

import (
	"strings"
	"testing"
)

func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"My Project":             "my-project",
		"  Café Bots!  ":         "cafe-bots",
		"Ünïcödé — dashes":       "unicode-dashes",
		"a__b..c":                "a-b-c",
		"日本語":                    "project",
		"!!!":                    "project",
		"Already-a-slug-2":       "already-a-slug-2",
		strings.Repeat("x", 300): strings.Repeat("x", 80),
	} {
		if got := Slugify(in); got != want {
			t.Errorf("Slugify(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewProjectValidate(t *testing.T) {
	code := "x = 1\n"
	empty := ""
	for _, c := range []struct {
		in       NewProject
		wantCode string
		field    string
		errCode  ErrorCode
	}{
		{NewProject{Name: "ok"}, SampleWorkflow, "", ""},
		{NewProject{Name: "ok", Code: &code}, code, "", ""},
		{NewProject{Name: "ok", Code: &empty}, "", "", ""},
		{NewProject{Name: " "}, "", "name", EINVALID},
		{NewProject{Name: strings.Repeat("é", 201)}, "", "name", EINVALID},
		{NewProject{Name: strings.Repeat("é", 200)}, SampleWorkflow, "", ""},
		{NewProject{Name: "tab\there"}, "", "name", EINVALID},
		{NewProject{Name: "big", Code: ptr(strings.Repeat("x", MaxCodeBytes+1))}, "", "code", ETOOLARGE},
		{NewProject{Name: "bad", Code: ptr("\xff")}, "", "code", EINVALID},
	} {
		got, _, err := c.in.Validate()
		if c.field == "" {
			if err != nil || got != c.wantCode {
				t.Errorf("%q: %v", c.in.Name, err)
			}
			continue
		}
		e, ok := err.(*Error)
		if !ok || e.Field != c.field || e.Code != c.errCode {
			t.Errorf("%q: err = %v, want %s on %s", c.in.Name, err, c.errCode, c.field)
		}
	}
}

func TestNewMessageValidate(t *testing.T) {
	id := "1f0e3a52-8c7b-4f0e-9a55-5d3e2f9f7a10"
	m := NewMessage{Prompt: "hi", MessageID: &id}
	got, err := m.Validate()
	if err != nil || got.String() != id {
		t.Fatalf("Validate = %v, %v", got, err)
	}
	for _, bad := range []NewMessage{{Prompt: ""}, {Prompt: "\n\t"}, {Prompt: strings.Repeat("a", MaxPromptLen+1)}, {Prompt: "a\x00"}, {Prompt: "x", MessageID: ptr("1")}} {
		if _, err := bad.Validate(); ErrorCodeOf(err) != EINVALID {
			t.Errorf("%q accepted", bad.Prompt)
		}
	}
}

func ptr(s string) *string { return &s }
