package blocklist_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testMeta(t testing.TB, tenantID string) *block.Meta {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	return &block.Meta{Version: block.VersionV1, BlockID: uuid.New(), TenantID: tenantID,
		MinID: bytes.Repeat([]byte{1}, 16), MaxID: bytes.Repeat([]byte{2}, 16),
		StartTime: now.Add(-time.Minute), EndTime: now, TotalObjects: 2, TotalSpans: 3,
		Size: 100, FooterSize: 20, RowGroups: 1, BloomShardCount: 1, CreatedAt: now}
}

// putBlock writes a block's meta.json (the poller needs nothing else).
func putBlock(t testing.TB, be backend.Backend, m *block.Meta) {
	t.Helper()
	data, err := m.Marshal()
	require.NoError(t, err)
	require.NoError(t, be.Put(context.Background(), block.DataKey(m.TenantID, m.BlockID), bytes.NewReader([]byte("x")), 1))
	require.NoError(t, be.Put(context.Background(), block.MetaKey(m.TenantID, m.BlockID), bytes.NewReader(data), int64(len(data))))
}

func ids(ms []*block.Meta) []uuid.UUID {
	var out []uuid.UUID
	for _, m := range ms {
		out = append(out, m.BlockID)
	}
	return out
}

func TestIndexRoundTrip(t *testing.T) {
	m := testMeta(t, "t")
	c := &blocklist.CompactedMeta{Meta: *testMeta(t, "t"), CompactedTime: time.Now().UTC().Truncate(time.Second)}
	idx := &blocklist.Index{CreatedAt: time.Now().UTC().Truncate(time.Second), Metas: []*block.Meta{m}, CompactedMetas: []*blocklist.CompactedMeta{c}}
	data, err := blocklist.EncodeIndex(idx)
	require.NoError(t, err)
	got, err := blocklist.DecodeIndex("t", data)
	require.NoError(t, err)
	require.Equal(t, idx, got)

	_, err = blocklist.DecodeIndex("other", data)
	require.ErrorIs(t, err, blocklist.ErrInvalidIndex, "metas of another tenant")
	dup := &blocklist.Index{Metas: []*block.Meta{m, m}}
	data, err = blocklist.EncodeIndex(dup)
	require.NoError(t, err)
	_, err = blocklist.DecodeIndex("t", data)
	require.ErrorIs(t, err, blocklist.ErrInvalidIndex, "a block twice")
	_, err = blocklist.DecodeIndex("t", []byte("not gzip"))
	require.ErrorIs(t, err, blocklist.ErrInvalidIndex)
}

func FuzzDecodeIndex(f *testing.F) {
	m := testMeta(f, "t")
	good, err := blocklist.EncodeIndex(&blocklist.Index{CreatedAt: time.Now(), Metas: []*block.Meta{m}})
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte{})
	f.Add(gz(`{"meta":[null]}`))
	f.Add(gz(`{"meta":[{"version":"v1"}],"compacted":[{}]}`))
	f.Add(gz(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := blocklist.DecodeIndex("t", data)
		if err != nil {
			require.ErrorIs(t, err, blocklist.ErrInvalidIndex)
			return
		}
		for _, m := range idx.Metas {
			require.NoError(t, m.Validate())
			require.Equal(t, "t", m.TenantID)
		}
	})
}

func FuzzParseCompactedMeta(f *testing.F) {
	good, err := blocklist.MarshalCompactedMeta(&blocklist.CompactedMeta{Meta: *testMeta(f, "t"), CompactedTime: time.Now()})
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"compactedTime":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := blocklist.ParseCompactedMeta(data)
		if err != nil {
			require.ErrorIs(t, err, blocklist.ErrInvalidCompactedMeta)
			return
		}
		require.NoError(t, c.Meta.Validate())
	})
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

func TestPollerListsAndSeesCompaction(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	a, b := testMeta(t, "t"), testMeta(t, "t")
	putBlock(t, be, a)
	putBlock(t, be, b)
	// A block without meta.json is being written: invisible, but reported
	// as incomplete (the compactor's janitor looks at those).
	partial := uuid.New()
	require.NoError(t, be.Put(ctx, block.DataKey("t", partial), bytes.NewReader([]byte("x")), 1))
	builder := blocklist.New(blocklist.Config{BuildIndex: true, Component: "compactor"}, be, log.NewNopLogger(), nil)
	require.NoError(t, builder.Poll(ctx))
	require.ElementsMatch(t, []uuid.UUID{a.BlockID, b.BlockID}, ids(builder.Metas("t")))
	require.Equal(t, []uuid.UUID{partial}, builder.Incomplete("t"))

	// Known live block gets compacted: the next listing notices.
	_, err := blocklist.MarkCompacted(ctx, be, a, time.Now())
	require.NoError(t, err)
	require.NoError(t, builder.Poll(ctx))
	require.Equal(t, []uuid.UUID{b.BlockID}, ids(builder.Metas("t")))
	require.Len(t, builder.CompactedMetas("t"), 1)
	require.Equal(t, a.BlockID, builder.CompactedMetas("t")[0].BlockID)

	// The builder wrote the index; a reader uses it without listing.
	idx, err := blocklist.ReadIndex(ctx, be, "t")
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{b.BlockID}, ids(idx.Metas))
	reader := blocklist.NewPoller(be, log.NewNopLogger(), nil)
	require.NoError(t, reader.Poll(ctx), "the first poll lists")
	c := testMeta(t, "t")
	putBlock(t, be, c) // not in the index yet
	require.NoError(t, reader.Poll(ctx))
	require.Equal(t, []uuid.UUID{b.BlockID}, ids(reader.Metas("t")), "the index, not a listing")

	// Deleting a compacted block: meta.json first, compacted meta last.
	require.NoError(t, blocklist.DeleteBlock(ctx, be, "t", a.BlockID))
	keys, err := be.List(ctx, "t/"+a.BlockID.String()+"/")
	require.NoError(t, err)
	require.Empty(t, keys)
}

func TestPollerFallsBackToListing(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	a := testMeta(t, "t")
	putBlock(t, be, a)
	reader := blocklist.NewPoller(be, log.NewNopLogger(), nil)
	require.NoError(t, reader.Poll(ctx), "no index")
	require.Equal(t, []uuid.UUID{a.BlockID}, ids(reader.Metas("t")))

	// A stale index is ignored.
	require.NoError(t, blocklist.WriteIndex(ctx, be, "t", &blocklist.Index{CreatedAt: time.Now().Add(-time.Hour), Metas: []*block.Meta{}}))
	stale := blocklist.New(blocklist.Config{StaleTenantIndex: time.Minute}, be, log.NewNopLogger(), nil)
	require.NoError(t, stale.Poll(ctx))
	require.NoError(t, stale.Poll(ctx))
	require.Equal(t, []uuid.UUID{a.BlockID}, ids(stale.Metas("t")))

	// So is an invalid one.
	require.NoError(t, be.Put(ctx, blocklist.IndexKey("t"), bytes.NewReader([]byte("junk")), 4))
	require.NoError(t, reader.Poll(ctx))
	require.Equal(t, []uuid.UUID{a.BlockID}, ids(reader.Metas("t")))

	// A fresh one is used as is.
	require.NoError(t, blocklist.WriteIndex(ctx, be, "t", &blocklist.Index{CreatedAt: time.Now(), Metas: []*block.Meta{}}))
	require.NoError(t, reader.Poll(ctx))
	require.Empty(t, reader.Metas("t"))
}

func TestAddBlockVisibleUntilPolled(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	require.NoError(t, blocklist.WriteIndex(ctx, be, "t", &blocklist.Index{CreatedAt: time.Now(), Metas: []*block.Meta{}}))
	p := blocklist.NewPoller(be, log.NewNopLogger(), nil)
	require.NoError(t, p.Poll(ctx))
	m := testMeta(t, "t")
	putBlock(t, be, m)
	p.AddBlock(m)
	require.Equal(t, []uuid.UUID{m.BlockID}, ids(p.Metas("t")))
	require.NoError(t, p.Poll(ctx))
	require.Equal(t, []uuid.UUID{m.BlockID}, ids(p.Metas("t")), "the index does not have it yet; still listed")
	require.NoError(t, blocklist.WriteIndex(ctx, be, "t", &blocklist.Index{CreatedAt: time.Now(), Metas: []*block.Meta{}, CompactedMetas: []*blocklist.CompactedMeta{{Meta: *m, CompactedTime: time.Now()}}}))
	require.NoError(t, p.Poll(ctx))
	require.Empty(t, p.Metas("t"), "reported compacted: dropped")
}

func TestNotifyingBackend(t *testing.T) {
	ctx := context.Background()
	var got []*block.Meta
	be := &blocklist.NotifyingBackend{Backend: inmem.New(), OnBlock: func(m *block.Meta) { got = append(got, m) }}
	m := testMeta(t, "t")
	putBlock(t, be, m)
	require.Len(t, got, 1)
	require.Equal(t, m.BlockID, got[0].BlockID)
	data, err := backend.ReadAll(ctx, be, block.MetaKey("t", m.BlockID))
	require.NoError(t, err)
	require.Contains(t, string(data), m.BlockID.String())
}
