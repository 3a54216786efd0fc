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
//     crash or kill -9; a power loss or kernel crash may lose the records of
//     the last SyncInterval (plus one fsync).
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
