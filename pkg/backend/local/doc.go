// Package local is a backend.Backend over a directory: key "a/b/c" is the file
// <path>/a/b/c.
//
// Invariants, beyond those of package backend:
//
//   - Every key is checked with backend.ValidateKey before any file-system call,
//     and every call goes through an os.Root opened on the directory, so no key
//     and no symlink can reach outside it.
//   - Put is atomic and durable: it writes a temporary file in the key's own
//     directory, fsyncs it, renames it over the key and fsyncs the directory
//     (Prometheus writeMetaFile, VictoriaMetrics MustWriteAtomic). A reader
//     holding the old file keeps reading the old bytes. The key's directory
//     and every directory above it are fsynced into their parents before the
//     first Put in them (remembered per process), so a power cut cannot take
//     away the name of a directory that holds an acknowledged object.
//   - Delete is durable too: it fsyncs the directory that lost a name, so a
//     deleted object does not come back after a power cut.
//   - Every file operation goes through a vfs.FS (an os.Root in production;
//     crashfs in TestPowerLoss, which cuts the power at random points and
//     fails if any of these fsyncs is missing).
//   - Temporary files are named "tmp\<random>". A backslash never occurs in a
//     valid key, so a temporary file can never be mistaken for an object: List
//     never returns one. New removes those left by a crash once they are older
//     than an hour (younger ones may belong to a live writer sharing the
//     directory; List ignores them meanwhile).
//   - Delete removes the directories it leaves empty, up to (not including)
//     the root, so an emptied "directory" vanishes from List as on S3. List
//     also hides directories that hold no object.
//   - GetRange reads only the requested bytes (ReadAt), never the whole file.
package local
