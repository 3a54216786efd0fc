// Package blocklist keeps each tenant's list of backend blocks and the
// tenant index (<tenant>/index.json.gz) that spares readers from listing the
// bucket.
//
// Invariants:
//
//   - A block is listed as live only once its meta.json is readable (blocks
//     are written meta-last, so a listed block is whole) and while no
//     meta.compacted.json exists for it. A block with meta.compacted.json is
//     listed as compacted, never as live.
//   - A Poller in index mode (the default) reads each tenant's index and
//     uses it when it is valid and younger than the stale age; otherwise it
//     lists the tenant's blocks itself. Its first poll always lists, so a
//     process that starts never sees fewer blocks than the bucket holds. A Poller in builder mode always
//     lists and writes the index afterwards. Only builders write indexes.
//   - An index is written whole (one atomic Put) and validated whole on
//     read: every meta must pass block.Meta.Validate and name the tenant the
//     index belongs to; a bad index is ignored, never partly used.
//   - Blocks announced with AddBlock are listed at once and stay listed
//     until a poll returns them (or reports them compacted), so a block an
//     ingester of this process flushed never disappears because the index
//     has not caught up yet.
//   - Metas, CompactedMetas and Tenants return snapshots that callers may
//     keep; the poller never mutates a slice it has handed out.
//   - Tenant directory names that fail tenant validation are skipped, never
//     used in a key.
//
// Deleting a block: meta.json goes first (the block stops being live),
// meta.compacted.json last, so a block half deleted is still seen as
// compacted and its deletion is retried; see DeleteBlock.
package blocklist
