// Package traceqltest generates random traces and random TraceQL queries
// for tests, deterministically from a *rand.Rand.
//
// Invariants: the same seed gives the same traces and queries; every
// generated query parses with traceql.Parse (no ParseError, no
// UnsupportedError); generated traces draw attribute keys and values from a
// small shared vocabulary so that generated queries match some traces and
// not others. Spans have all attribute types (string, int, float, bool,
// arrays), events, links, statuses (including nil), kinds, nested
// parent/child links, and occasionally orphans and second roots.
package traceqltest
