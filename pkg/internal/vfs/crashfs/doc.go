// Package crashfs is an in-memory vfs.FS that simulates power loss: it keeps
// what was written but not yet fsynced apart from what is durable, and Cut
// throws the unsynced part away, wholly or in part, as a power cut may.
//
// # Model
//
// The model is POSIX as a careful program must assume it, which is weaker
// than what ext4 (data=ordered) happens to give:
//
//   - File data is durable once File.Sync on that file returns. Writes and
//     truncations after the last Sync are pending.
//   - A name (file or directory created, renamed, removed) is durable once
//     the directory holding it is fsynced (vfs.SyncDir: open the directory,
//     Sync the handle). fsync of a file does not make its name durable, and
//     fsync of a directory does not make the data of its files durable.
//   - A rename within one directory is atomic: after a cut the directory
//     holds either the old or the new binding, never both, never neither.
//     Renames across directories are refused (EXDEV): neither user needs
//     them and their crash behaviour is file-system specific.
//   - A file reachable through no durable name is gone after a cut, whatever
//     was fsynced into it.
//
// At a cut (Cut, or automatically at a chosen operation, CutAtOp), every
// later operation on the FS and its open files fails with ErrPowerCut: the
// machine is down. Recover then builds the disk as the next boot finds it,
// under a Mode:
//
//   - LoseUnsynced: exactly the durable state; every pending write and name
//     change is lost.
//   - KeepSome: a power cut may also persist part of what was pending. For
//     each file, a random prefix of its pending appended bytes survives
//     (sometimes with the end of it zero-filled: the size reached the disk
//     before the data, as on XFS or ext4 data=writeback); a pending
//     truncation or overwrite survives wholly or not at all. For each
//     directory, a random prefix of its pending name changes, in order,
//     survives. Choices are drawn from the seed given to Recover, so a
//     failing case replays exactly.
//
// What the model does not cover: corruption of data that was durable (bit
// rot, a lying disk cache), reordering of name changes within a directory,
// and hard links.
//
// # Use
//
// Open a WAL or backend on New(), run a workload, Cut (or CutAtOp), then
// Recover(mode, seed) gives a fresh FS holding the surviving state (all of it
// durable), which can be used again or written to a real directory with
// WriteTo. Ops counts mutating operations, so tests can pick random cut
// points over a run of known length.
package crashfs
