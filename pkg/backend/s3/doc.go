// Package s3 is a backend.Backend on Amazon S3 or any S3-compatible store
// (MinIO, ...), built on minio-go. Configuration uses Tempo's
// storage.trace.s3 YAML keys unchanged.
//
// Invariants, beyond those of package backend:
//
//   - Key k is object <prefix>/k in the bucket; List strips the prefix again,
//     so two backends with different prefixes never see each other's objects.
//   - Put is atomic because S3 makes a single PUT or a completed multipart
//     upload visible at once. A body whose length differs from size fails the
//     upload before it completes (the reader looks one byte ahead at the end).
//     An aborted multipart upload can leave invisible parts behind; a bucket
//     lifecycle rule that removes incomplete uploads cleans them (as Tempo
//     recommends).
//   - Every HTTP attempt goes through one transport stack: retry (exponential
//     backoff with full jitter on 429/5xx and transport errors, at most
//     retry_max_attempts attempts, stopped by ctx) around hedging (GET/HEAD
//     only: after hedge_requests_at another identical request starts, up to
//     hedge_requests_up_to in total; the first response wins and the others
//     are cancelled) around the HTTP transport. minio-go's own retry loop is
//     switched off so attempts never multiply.
//   - GetRange sends one ranged GET and checks the answer is a partial
//     response of exactly the asked length; a range past the end is
//     ErrOutOfRange.
//   - New does no network I/O; Check verifies bucket and credentials once at
//     start-up with one clear error.
//   - Secrets (secret_key, session_token, SSE-C key) are flagext.Secret values,
//     never logged, and never part of an error message.
package s3
