// Package backendtest holds AcceptanceTest, the one test every
// backend.Backend implementation runs (inmem, local, s3 against MinIO). It
// pins every rule in the package backend doc comment; a rule that is not
// tested here is not a rule.
//
// Invariants of the test itself: each subtest gets a fresh backend from the
// factory, so subtests do not see each other's objects; the factory registers
// its own cleanup (t.Cleanup) and the test never calls Close. Goroutines the
// test starts are joined before the subtest returns.
package backendtest
