package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-fuego/fuego"
	"github.com/go-fuego/fuego/option"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/domain"
)

// MaxLimit is the most items one answer of a paged list holds (?limit=),
// and what GET /projects/{id}/commits answers without it: a git log is read
// commit by commit, one query each.
const MaxLimit = 200

// queryPage reads the ?limit= and ?before= of a paged list.
func queryPage(r *http.Request) (db.Page, error) {
	limit, err := queryLimit(r)
	if err != nil {
		return db.Page{}, err
	}
	before, err := queryParam(r, "before")
	return db.Page{Limit: limit, Before: before}, err
}

// queryLimit reads ?limit=: absent is 0, the route's default; anything but
// an integer from 1 to MaxLimit is a 400 naming it.
func queryLimit(r *http.Request) (int, error) {
	v, err := queryParam(r, "limit")
	if err != nil || v == "" {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, domain.Invalid("limit", "must be an integer from 1 to %d, got %q", MaxLimit, v)
	}
	return n, nil
}

// pageParams documents the ?limit= and ?before= of a paged list of items:
// without says what the route answers without a limit, before what the
// cursor names.
func pageParams(items, without, before string) fuego.RouteOption {
	return func(r *fuego.BaseRoute) {
		option.QueryInt("limit", fmt.Sprintf("At most this many %s (1 to %d); %s when omitted", items, MaxLimit, without))(r)
		option.Query("before", before)(r)
		if p := r.Operation.Parameters.GetByInAndName("query", "limit"); p != nil {
			p.Schema.Value.WithMin(1).WithMax(MaxLimit)
		}
	}
}
