// Package wal is the ingester's write-ahead log: opaque records appended to
// numbered segment files, each record framed with its length and a CRC32C
// (see FORMAT.md). A push is acknowledged only after Append returns nil, so
// this package decides what an acknowledged span survives.
//
// # Acknowledgement
//
// When Append (or AppendBatch) returns nil, the record is:
//
//   - SyncAlways (default): written and fsynced. It survives a process crash,
//     kill -9, a kernel panic and power loss. Concurrent appenders share
//     fsyncs (group commit): one of them writes everything framed so far and
//     fsyncs once for all of them.
//   - SyncInterval: handed to the kernel with write(2). It survives a process
//     crash or kill -9; a power loss or kernel crash may lose the records
//     acknowledged since the start of the last periodic fsync that completed:
//     at most the last SyncInterval plus the duration of the fsync in flight
//     (longer only if the syncer goroutine is starved of CPU or an fsync
//     takes longer than SyncInterval, when ticks are skipped).
//   - SyncNever: handed to the kernel with write(2); fsynced only by Rotate,
//     Sync and Close. It survives a process crash, not a power loss.
//
// An error from Append means the record may or may not be in the log; it is
// never half in it (Replay drops torn records). After any write or fsync
// error the WAL refuses every later append with that error: after a failed
// fsync the kernel may have dropped dirty pages, so nothing written after it
// could be trusted. The caller must reopen the WAL (and Replay) to go on.
//
// # Ordering
//
// Records get a total order, the order in which appenders took the WAL's
// lock; Replay returns them in that order. Segment numbers never decrease
// along it, and a record is never split across segments (a record larger
// than SegmentSize gets a segment of its own). The records of one
// AppendBatch are consecutive and in one segment; a crash before the batch
// is acknowledged may keep any prefix of it.
//
// # Segments
//
// Segment files live in Config.Dir, named by their number as 20 decimal
// digits (00000000000000000001): lexical order is numeric order. Open
// never appends to an existing segment; it creates segment max+1 (or 1) and
// remembers the existing ones for Replay. A segment is rotated when the next
// record would take it past SegmentSize, and by Rotate; the old one is
// fsynced and closed first. New segment files and deletions are followed by
// an fsync of the directory. Truncate(n) deletes segments below n, never
// the active one. Files in Dir with other names are ignored.
//
// # Power loss
//
// What the WAL relies on is the POSIX model that package
// internal/vfs/crashfs simulates: file data is durable only once the file
// is fsynced, a new or removed name only once its directory is fsynced.
// Every file operation goes through a vfs.FS (OpenFS), and the fsyncs are
// ordered so that no power cut loses an acknowledged record:
//
//   - Open creates Dir and any missing parent, fsyncing the parent of each
//     directory it created (and Dir's parent in any case), before anything
//     is written in it.
//   - A new segment's name is made durable (directory fsync) before any
//     record is appended to it, so a record fsynced into it can never be
//     behind a name the power cut takes away.
//   - A record is acknowledged under SyncAlways only after an fsync of its
//     segment that started after the record was written; a rotation fsyncs
//     the old segment before records buffered for it count as durable.
//   - Truncate fsyncs the directory after deleting, so a deleted segment
//     does not come back after a power cut (it would be replayed twice).
//   - A torn tail, after a power cut, is whatever prefix of the unsynced
//     writes reached the disk, possibly ending in zeros (the file size got
//     there, the data did not). Replay truncates it; since Open never
//     appends to an old segment, the truncation needs no fsync for
//     correctness (a lost one is redone at the next replay), though Replay
//     does fsync it.
//
// TestPowerLoss (powerloss_test.go) cuts the power at hundreds of random
// points under concurrent appenders, rotations and truncations, and checks
// exactly this; removing any of the fsyncs above makes it fail.
//
// # Replay and corruption
//
// Replay reads the segments that existed at Open, oldest first. A torn or
// corrupt record (short header, length over MaxRecordSize or past the end
// of the file, bad CRC, bad segment header) ends its segment: the file is
// truncated at that record's offset, a warning with segment and offset is
// logged, rubato_wal_corruptions_total goes up, and replay continues with
// the next segment, which is an independent file and is read in full. So
// what survives of a segment is always a prefix of what was appended to it.
// A segment written by a newer format
// version stops Replay with ErrUnsupportedVersion and is not modified.
// ReadSegment reads one segment without repairing anything and returns the
// *CorruptionError.
//
// # Concurrency
//
// Every method is safe for concurrent use, except that Replay must not run
// concurrently with Truncate. Under SyncInterval, Open starts one goroutine
// and Close stops it; nothing else starts goroutines.
package wal
