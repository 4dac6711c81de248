package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestCluster(t *testing.T) {
	c := Start(t)
	ctx := context.Background()
	url := c.CreateDatabase(t, "one")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s on port %d", v, c.Port)
	conn.Close(ctx)
	// A restart keeps the data.
	c.Stop()
	if ready(c.Port) {
		t.Fatal("still answering after Stop")
	}
	c.Start()
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}
