package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/db/dbtest"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

func TestRiverUIAsksForThePassword(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	client, err := jobargs.NewInsertOnlyClient(dbtest.New(t), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ui, err := api.NewRiverUI(ctx, client, log, "pw")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	defer srv.Close()
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/riverui/api/jobs?state=completed", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d", code)
	}
	if code := get(api.RiverUIUser, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", code)
	}
	if code := get(api.RiverUIUser, "pw"); code != http.StatusOK {
		t.Errorf("right password: %d", code)
	}
}
