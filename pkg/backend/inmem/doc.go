// Package inmem is a map-backed backend.Backend for unit tests.
//
// Invariants: it keeps every rule of package backend (pinned by
// backendtest.AcceptanceTest). Objects are copied on Put and on every read, so
// callers never share memory with the store; Put reads the whole body before
// taking the lock, so a slow reader never blocks other callers, and stores
// nothing when the read fails, the size is wrong or ctx ends first. Nothing is
// persisted; Close drops every object.
package inmem
