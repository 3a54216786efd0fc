package querier

import "github.com/rubatodb/rubato/pkg/block"

// AddBlock makes a block queryable at once, before the next blocklist poll
// finds it: the single binary calls it when an ingester of the same process
// has flushed the block.
func (q *Querier) AddBlock(m *block.Meta) { q.poller.AddBlock(m) }
