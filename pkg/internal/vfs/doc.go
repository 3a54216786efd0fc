// Package vfs is the small file-system interface under the WAL (pkg/wal) and
// the local backend (pkg/backend/local): every file operation they make goes
// through an FS, so that a test can run them on a simulated disk that loses
// what was not fsynced (package crashfs) while production runs on the real
// one (OS, Root) at the cost of an interface call.
//
// Invariants:
//
//   - OS and Root add no behaviour: each method is the os (or os.Root) call of
//     the same name, and the File they return is the *os.File itself, so the
//     hot path (Write, Sync on a WAL segment) is one interface call away from
//     the system call.
//   - A directory is made durable the POSIX way, by opening it and calling
//     Sync on the handle (SyncDir). Code that creates, renames or removes a
//     name must SyncDir the directory holding it before it relies on the
//     change surviving power loss; code that writes a file must Sync it.
//     crashfs holds every implementation to exactly that.
//   - MkdirAll returns the directories it created, parents first, so that
//     the caller can make each new name durable in its parent.
package vfs
