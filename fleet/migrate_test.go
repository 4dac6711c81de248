package fleet_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/imago-ima/imago/internal/fleettest"
	"github.com/imago-ima/imago/store"
)

// The next versions of the schema, as a later imago would carry them:
// version 3 only adds and says so (compatible: older replicas keep
// running), version 4 does not say so (older builds must stop, and refuse
// to start).
var (
	v3 = map[string]string{
		"store/migrations/postgres/0003_next.sql": "-- imago: compatible\nCREATE TABLE next_feature (id BIGINT);\nINSERT INTO next_feature (id) VALUES (3);\n",
		"store/migrations/sqlite/0003_next.sql":   "-- imago: compatible\nCREATE TABLE next_feature (id BIGINT);\nINSERT INTO next_feature (id) VALUES (3);\n",
	}
	v4 = map[string]string{
		"store/migrations/postgres/0004_breaking.sql": "-- not marked compatible: older builds must not run on it\nCREATE TABLE breaking_change (id BIGINT);\n",
		"store/migrations/sqlite/0004_breaking.sql":   "-- not marked compatible: older builds must not run on it\nCREATE TABLE breaking_change (id BIGINT);\n",
	}
)

func merged(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestMigrationsAcrossVersions starts replicas of three builds together on
// a fresh PostgreSQL database (this build, schema 2, and a next one,
// schema 3, whose migration is compatible): every migration runs once
// (under the advisory lock) and every replica serves. Then a build with an
// incompatible schema 4 starts: it migrates, the replicas of older builds
// stop by themselves (exit status 1, saying why) within two intervals,
// and an older build started now refuses the database (exit status 2).
func TestMigrationsAcrossVersions(t *testing.T) {
	var cur, next, breaking string
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); cur = bins.Get(t, "imago", nil) }()
	go func() { defer wg.Done(); next = bins.Get(t, "imago-v3", v3) }()
	go func() { defer wg.Done(); breaking = bins.Get(t, "imago-v4", merged(v3, v4)) }()
	wg.Wait()
	if t.Failed() {
		return
	}
	e := fleettest.New(t, cur)
	type started struct {
		r   *fleettest.Replica
		err error
	}
	names := []string{"old-a", "next-a", "old-b", "next-b"}
	res := make([]started, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bin := cur
			if strings.HasPrefix(n, "next") {
				bin = next
			}
			r, err := e.Launch(n, bin)
			res[i] = started{r, err}
		}()
	}
	wg.Wait()
	for i, s := range res {
		if s.err != nil {
			t.Fatalf("%s: %v", names[i], s.err)
		}
	}
	db, err := sql.Open("pgx", e.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	versions := func() map[int]int {
		rows, err := db.Query(`SELECT version, COUNT(*) FROM schema_migrations GROUP BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int]int{}
		for rows.Next() {
			var v, n int
			rows.Scan(&v, &n)
			out[v] = n
		}
		return out
	}
	if v := versions(); len(v) != 3 || v[1] != 1 || v[2] != 1 || v[3] != 1 {
		t.Fatalf("schema_migrations after four replicas of two builds started together: %v", v)
	}
	var ran int
	if err := db.QueryRow(`SELECT COUNT(*) FROM next_feature`).Scan(&ran); err != nil || ran != 1 {
		t.Fatalf("migration 3 ran %d times (%v)", ran, err)
	}
	// Every replica serves, old builds included.
	for _, s := range res {
		rsp, err := e.HTTP().Get(s.r.Direct() + "/v1/fleet")
		if err != nil || rsp.StatusCode != 200 {
			t.Fatalf("%s does not serve: %v %v", s.r.Name, err, rsp)
		}
		rsp.Body.Close()
	}

	// An incompatible schema: the older replicas stop by themselves.
	br := e.Start("breaking", breaking)
	if v := versions(); v[4] != 1 {
		t.Fatalf("schema_migrations after the breaking build started: %v", v)
	}
	for _, s := range res {
		if !s.r.Wait(3 * e.Interval) {
			t.Fatalf("%s still runs on a schema it cannot use", s.r.Name)
		}
		if code := s.r.ExitCode(); code != 1 || !strings.Contains(s.r.ReadLog(), "not compatible with this imago") {
			t.Fatalf("%s exited %d:\n%s", s.r.Name, code, s.r.ReadLog())
		}
	}
	if !br.Running() {
		t.Fatalf("the breaking build stopped:\n%s", br.ReadLog())
	}
	if _, err := e.Launch("old-c", cur); err == nil {
		t.Fatal("an old build started on the incompatible schema")
	} else if !strings.Contains(err.Error(), "exited at start: exit status 2") {
		t.Fatalf("an old build on the incompatible schema: %v", err)
	}
	// The store package agrees, in-process.
	if _, err := store.Open(context.Background(), e.DB, store.Options{}); err == nil || !strings.Contains(err.Error(), "version 4") {
		t.Fatalf("store.Open on schema 4: %v", err)
	}
}
