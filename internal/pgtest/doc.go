// Package pgtest starts real PostgreSQL clusters for tests: initdb in a
// temporary directory, then the server on 127.0.0.1 at a free port, owned
// by the test (killed if the test process dies, stopped when the test
// ends). Tests of the verifier's store run on it, and the fleet's tests
// restart it mid-run (Stop, Start).
//
// It finds the server binaries in $PG_BINDIR, pg_config --bindir, or
// /usr/lib/postgresql/<version>/bin (Debian's postgresql package); a test
// that cannot find them calls testenv.Missing (a failure under CI, which
// installs PostgreSQL). PostgreSQL refuses to run as root: as root, the
// cluster runs as the "postgres" user the package creates.
package pgtest
