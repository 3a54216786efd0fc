// Package tlstest generates throw-away certificates for tests of TLS
// receivers: a CA, a server certificate for 127.0.0.1 and localhost, and
// client certificates (one signed by the CA, one by a stranger CA).
//
// Invariants: nothing here is for production use; every key is ECDSA P-256
// generated afresh per call with crypto/rand, every file is written under
// the directory given, and certificates are valid from an hour ago for a day.
package tlstest
