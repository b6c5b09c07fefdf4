package db

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
)

// A transaction of InTx (eventTx) can hold writes whose result nothing waits
// for (events, memory items, status updates, River's insert notification):
// they are sent in one pgx batch with the transaction's next statement, or
// with COMMIT, in order. Every statement costs the worker a write and a read
// on its connection, and a step writes about ten such rows; queued, they cost
// none of their own. A queued write that fails fails the statement it was
// sent with, and so the transaction, as it would have on its own. Reads whose
// result is needed only after that statement go the same way (rowLater,
// ReadMemoryLater): they hand their rows to a callback when the batch runs.
//
// On a pool, the transaction waits for one of the pool's slots (slots.go),
// then runs on a connection it holds (connTx) rather than by pgx's Tx, so
// that both of its ends go in batches: BEGIN with its first statement, and
// COMMIT with the writes still queued. pgx's Tx sends COMMIT on its own, one
// more round trip per transaction. Until its first statement the transaction
// holds no slot and no connection, and Conn is nil.

// lazyTx returns a transaction of InTx on pool that begins with its first
// statement.
func lazyTx(pool *pgxpool.Pool) *eventTx { return &eventTx{pool: pool} }

// send sends b in the transaction, beginning it first when it has not begun.
func (tx *eventTx) send(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if tx.Tx != nil {
		return tx.Tx.SendBatch(ctx, b)
	}
	slot := slotsOf(tx.pool)
	if err := slot.take(ctx); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	c, err := tx.pool.Acquire(ctx)
	if err != nil {
		slot.give()
		return pgx.FailedBatchResults(b, err)
	}
	tx.held = newConnTx(c, slot)
	tx.Tx = tx.held
	all := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
	all.Queue("begin")
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	br := sendBatch(ctx, c.Conn(), all)
	_, _ = br.Exec() // BEGIN; its error stays in br
	return br
}

// begin makes sure the transaction has begun and sent its queued writes.
func (tx *eventTx) begin(ctx context.Context) error {
	if tx.Tx != nil && len(tx.queued) == 0 {
		return nil
	}
	return tx.send(ctx, tx.take()).Close()
}

// direct reports whether a statement can go on its own: nothing is queued
// and the transaction has begun.
func (tx *eventTx) direct() bool { return tx.Tx != nil && len(tx.queued) == 0 }

// later queues a write in tx when tx is a transaction of InTx, and runs it at
// once otherwise.
func later(ctx context.Context, q Querier, sql string, args ...any) error {
	return laterAs(ctx, q, "", sql, args...)
}

// laterAs is later for a write whose failure, when queued, is reported as
// what (the batch it goes with returns the first failure). A batch sent by
// the transaction's SendBatch keeps PostgreSQL's own error instead.
func laterAs(ctx context.Context, q Querier, what, sql string, args ...any) error {
	if tx, ok := q.(*eventTx); ok && len(args) > 0 {
		qq := &pgx.QueuedQuery{SQL: sql, Arguments: args}
		if what != "" {
			qq.Fn = func(br pgx.BatchResults) error {
				_, err := br.Exec()
				return wrap(err, what)
			}
		}
		tx.queued = append(tx.queued, qq)
		return nil
	}
	_, err := q.Exec(ctx, sql, args...)
	return err
}

// rowLater reads one row of sql in q: in a transaction of InTx with the
// transaction's next statement, as a queued write goes, and at once
// elsewhere. scan runs when the row comes; an error it returns fails the
// batch the read went with, so it returns only the statement's own failure
// and keeps a decoding error for its caller (when the batch ends with
// COMMIT, PostgreSQL has committed by then). The returned read sends the
// read on its own if nothing has sent it yet, and returns that send's error,
// or an error when the batch it went with failed before scan ran.
func rowLater(ctx context.Context, q Querier, sql string, args []any, scan func(pgx.Row) error) (read func() error) {
	b := &pgx.Batch{}
	b.Queue(sql, args...).QueryRow(scan)
	return batchLater(ctx, q, b)
}

// batchLater is rowLater for the statements of b, each with its callback (or
// none), in order.
func batchLater(ctx context.Context, q Querier, b *pgx.Batch) (read func() error) {
	tx, ok := q.(*eventTx)
	if !ok {
		err := q.SendBatch(ctx, b).Close()
		return func() error { return err }
	}
	if len(b.QueuedQueries) == 0 {
		return func() error { return nil }
	}
	last := b.QueuedQueries[len(b.QueuedQueries)-1]
	done, fn := false, last.Fn
	last.Fn = func(br pgx.BatchResults) error {
		done = true
		if fn == nil {
			_, err := br.Exec()
			return err
		}
		return fn(br)
	}
	tx.queued = append(tx.queued, b.QueuedQueries...)
	return func() error {
		if done {
			return nil
		}
		if !slices.Contains(tx.queued, last) {
			return errors.New("the statement a queued read went with failed before it")
		}
		if err := tx.begin(ctx); err != nil {
			return err
		}
		if !done {
			return errors.New("a queued read was not read")
		}
		return nil
	}
}

// take returns a batch of the queued writes and forgets them.
func (tx *eventTx) take() *pgx.Batch {
	b := &pgx.Batch{QueuedQueries: tx.queued}
	tx.queued = nil
	return b
}

// readQueued reads the results of the first n queries of br's batch b.
func readQueued(br pgx.BatchResults, b *pgx.Batch, n int) error {
	for _, qq := range b.QueuedQueries[:n] {
		var err error
		if qq.Fn != nil {
			err = qq.Fn(br)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// riverNotify begins River's statement that tells workers a job was inserted
// (riverpgxv5's PGNotifyMany, run by every InsertTx that is due to notify its
// queue). Its only result is its error, and PostgreSQL delivers the
// notification at COMMIT: in a transaction of InTx it is queued like the
// service's own writes rather than sent on its own, which was a round trip of
// every POST of a message and of every step that enqueues the next. A River
// that words the statement otherwise only loses the saving.
const riverNotify = jobargs.RiverNotifySQL

// A statement without arguments may hold several statements, which a batch
// (the extended protocol) does not take: it goes on its own, after the queue.

func (tx *eventTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(args) > 0 && strings.HasPrefix(sql, riverNotify) {
		tx.queued = append(tx.queued, &pgx.QueuedQuery{SQL: sql, Arguments: args})
		return pgconn.CommandTag{}, nil
	}
	if tx.direct() || len(args) == 0 {
		if err := tx.begin(ctx); err != nil {
			return pgconn.CommandTag{}, err
		}
		return tx.Tx.Exec(ctx, sql, args...)
	}
	b := tx.take()
	var tag pgconn.CommandTag
	b.Queue(sql, args...).Exec(func(t pgconn.CommandTag) error {
		tag = t
		return nil
	})
	err := tx.send(ctx, b).Close() // runs the Exec callback that sets tag
	return tag, err
}

func (tx *eventTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if tx.direct() || len(args) == 0 {
		if err := tx.begin(ctx); err != nil {
			return errRow{err}
		}
		return tx.Tx.QueryRow(ctx, sql, args...)
	}
	// Sent when scanned (the batch needs the row's destinations), with the
	// writes queued by then, so they keep their order with any statement run
	// between this call and Scan.
	return rowFunc(func(dest ...any) error {
		b := tx.take()
		b.Queue(sql, args...).QueryRow(func(r pgx.Row) error { return r.Scan(dest...) })
		return tx.send(ctx, b).Close()
	})
}

func (tx *eventTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if tx.direct() || len(args) == 0 {
		if err := tx.begin(ctx); err != nil {
			return nil, err
		}
		return tx.Tx.Query(ctx, sql, args...)
	}
	b := tx.take()
	n := len(b.QueuedQueries)
	b.Queue(sql, args...)
	br := tx.send(ctx, b)
	if err := readQueued(br, b, n); err != nil {
		_ = br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (tx *eventTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if tx.direct() {
		return tx.Tx.SendBatch(ctx, b)
	}
	all := tx.take()
	n := len(all.QueuedQueries)
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	br := tx.send(ctx, all)
	// An error here stays in br: the caller's reads and Close return it.
	_ = readQueued(br, all, n)
	return br
}

func (tx *eventTx) Begin(ctx context.Context) (pgx.Tx, error) { // a savepoint
	if err := tx.begin(ctx); err != nil {
		return nil, err
	}
	tx.unsure = true // see announced
	return tx.Tx.Begin(ctx)
}

func (tx *eventTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := tx.begin(ctx); err != nil {
		return 0, err
	}
	return tx.Tx.CopyFrom(ctx, table, columns, src)
}

func (tx *eventTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := tx.begin(ctx); err != nil {
		return nil, err
	}
	return tx.Tx.Prepare(ctx, name, sql)
}

func (tx *eventTx) LargeObjects() pgx.LargeObjects {
	_ = tx.begin(context.Background()) // an error shows on first use
	return tx.Tx.LargeObjects()
}

// Conn is nil until the transaction has begun.
func (tx *eventTx) Conn() *pgx.Conn {
	if tx.Tx == nil {
		return nil
	}
	return tx.Tx.Conn()
}

// Commit sends the queued writes and commits. A transaction that sent
// nothing has nothing to commit. On a pool, COMMIT goes in the batch of the
// writes still queued (and of BEGIN, when nothing was sent before): a write
// that fails there makes PostgreSQL skip the COMMIT, and the transaction is
// rolled back by Rollback, as InTx does after a failed Commit.
func (tx *eventTx) Commit(ctx context.Context) error {
	if tx.Tx == nil && len(tx.queued) == 0 {
		return nil
	}
	if tx.Tx != nil && tx.held == nil { // on a caller's transaction (tests): a savepoint
		if err := tx.begin(ctx); err != nil {
			return err
		}
		return tx.Tx.Commit(ctx)
	}
	b := tx.take()
	var tag pgconn.CommandTag
	b.Queue("commit").Exec(func(t pgconn.CommandTag) error {
		tag = t
		return nil
	})
	if err := tx.send(ctx, b).Close(); err != nil {
		return err
	}
	tx.held.release()
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (tx *eventTx) Rollback(ctx context.Context) error {
	tx.queued = nil
	switch {
	case tx.Tx == nil:
		return nil
	case tx.held != nil:
		return tx.held.Rollback(ctx)
	default:
		return tx.Tx.Rollback(ctx)
	}
}

// connTx is a transaction of InTx on a connection it holds from the pool.
// eventTx begins and commits it in its batches; Rollback ends it otherwise.
// When a statement leaves the connection anywhere but idle outside a
// transaction (a failed COMMIT, a cancelled read), the pool closes it on
// release instead of reusing it.
type connTx struct {
	onConn
	c          *pgxpool.Conn // nil once released
	slot       *slots        // the pool's, whose slot it holds (slots.go)
	savepoints int           // opened so far, for their names
}

func newConnTx(c *pgxpool.Conn, slot *slots) *connTx {
	t := &connTx{c: c, slot: slot}
	t.onConn = onConn{get: t.conn}
	return t
}

func (t *connTx) release() {
	if t.c != nil {
		t.c.Release()
		t.c = nil
		t.slot.give()
	}
}

func (t *connTx) conn() (*pgx.Conn, error) {
	if t.c == nil {
		return nil, pgx.ErrTxClosed
	}
	return t.c.Conn(), nil
}

func (t *connTx) Commit(ctx context.Context) error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	defer t.release()
	tag, err := c.Exec(ctx, "commit")
	if err == nil && tag.String() == "ROLLBACK" {
		err = pgx.ErrTxCommitRollback
	}
	return err
}

// Rollback rolls back what is open on the connection, if anything, and
// releases it.
func (t *connTx) Rollback(ctx context.Context) error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	defer t.release()
	if c.PgConn().TxStatus() == 'I' || c.IsClosed() {
		return nil
	}
	_, err = c.Exec(ctx, "rollback")
	return err
}

func (t *connTx) Begin(ctx context.Context) (pgx.Tx, error) { return newSavepoint(ctx, t) }

// savepoint is a nested transaction of a connTx (its Begin). Each has a
// name of its own in the transaction; it runs nothing once it or its
// transaction has ended.
type savepoint struct {
	onConn
	tx     *connTx
	name   string
	closed bool
}

func newSavepoint(ctx context.Context, t *connTx) (*savepoint, error) {
	c, err := t.conn()
	if err != nil {
		return nil, err
	}
	t.savepoints++
	sp := &savepoint{tx: t, name: "vg_sp_" + strconv.Itoa(t.savepoints)}
	sp.onConn = onConn{get: sp.conn}
	if _, err := c.Exec(ctx, "savepoint "+sp.name); err != nil {
		return nil, err
	}
	return sp, nil
}

func (sp *savepoint) conn() (*pgx.Conn, error) {
	if sp.closed {
		return nil, pgx.ErrTxClosed
	}
	return sp.tx.conn()
}

func (sp *savepoint) end(ctx context.Context, sql string) error {
	c, err := sp.conn()
	if err != nil {
		return err
	}
	sp.closed = true
	_, err = c.Exec(ctx, sql+sp.name)
	return err
}

func (sp *savepoint) Commit(ctx context.Context) error { return sp.end(ctx, "release savepoint ") }
func (sp *savepoint) Rollback(ctx context.Context) error {
	return sp.end(ctx, "rollback to savepoint ")
}

func (sp *savepoint) Begin(ctx context.Context) (pgx.Tx, error) {
	if _, err := sp.conn(); err != nil {
		return nil, err
	}
	return newSavepoint(ctx, sp.tx)
}

// onConn runs statements on the connection get returns: a transaction's or
// a savepoint's, and an error once it has ended.
type onConn struct {
	get func() (*pgx.Conn, error)
}

func (o onConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := o.get()
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return c.Exec(ctx, sql, args...)
}

func (o onConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := o.get()
	if err != nil {
		return nil, err
	}
	return c.Query(ctx, sql, args...)
}

func (o onConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := o.get()
	if err != nil {
		return errRow{err}
	}
	return c.QueryRow(ctx, sql, args...)
}

func (o onConn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := o.get()
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return sendBatch(ctx, c, b)
}

func (o onConn) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	c, err := o.get()
	if err != nil {
		return 0, err
	}
	return c.CopyFrom(ctx, table, columns, src)
}

func (o onConn) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	c, err := o.get()
	if err != nil {
		return nil, err
	}
	return c.Prepare(ctx, name, sql)
}

// LargeObjects are not available in a transaction of InTx (pgx builds them
// only on its own Tx, and the zero value must not be used); nothing here
// uses them.
func (o onConn) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

// Conn is nil once the transaction has ended.
func (o onConn) Conn() *pgx.Conn {
	c, _ := o.get()
	return c
}

type rowFunc func(dest ...any) error

func (f rowFunc) Scan(dest ...any) error { return f(dest...) }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRows are the rows of the last query of a batch: the batch is closed
// with them, which frees the connection.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}
