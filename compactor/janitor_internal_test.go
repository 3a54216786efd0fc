package compactor

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/grafana/dskit/flagext"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/backend/s3"
	"github.com/rubatodb/rubato/pkg/block"
)

func TestJanitor(t *testing.T) {
	t.Parallel()
	t.Run("inmem", func(t *testing.T) {
		t.Parallel()
		testJanitor(t, inmem.New())
	})
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		be, err := local.New(local.Config{Path: t.TempDir()}, nil)
		require.NoError(t, err)
		testJanitor(t, be)
	})
}

// TestJanitorMinIO runs the janitor against S3 object times (LastModified
// from listings, set by the server when the upload began).
func TestJanitorMinIO(t *testing.T) {
	srv := minio.Start(t)
	var cfg s3.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Endpoint, cfg.Insecure, cfg.Region = srv.Endpoint, true, "us-east-1"
	cfg.Bucket = srv.NewBucket(t, "janitor")
	cfg.AccessKey, cfg.SecretKey = srv.AccessKey, flagext.SecretWithValue(srv.SecretKey)
	cfg.ForcePathStyle = true
	be, err := s3.New(cfg, log.NewNopLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = be.Close() })
	testJanitor(t, be)
}

// testJanitor lays out one tenant with block directories in every state the
// janitor must tell apart, runs a compaction round, and checks what is left.
func testJanitor(t *testing.T, be backend.Backend) {
	ctx := context.Background()
	const tn = "janitor-tenant"
	grace := 2 * time.Second
	put := func(id uuid.UUID, names ...string) {
		for _, n := range names {
			require.NoError(t, be.Put(ctx, block.BlockDir(tn, id)+"/"+n, strings.NewReader(n), int64(len(n))))
		}
	}
	var (
		old         = uuid.New() // data and blooms, no meta, older than grace: deleted
		fresh       = uuid.New() // no meta, younger than grace: kept
		inProgress  = uuid.New() // old, but an upload attempt re-puts an object before the re-check: kept
		metaAppears = uuid.New() // old, but the upload puts meta.json before the re-check: kept
		withMeta    = uuid.New() // old, meta.json unreadable (so the poller skips it): kept
		compacted   = uuid.New() // old, meta.compacted.json unreadable: kept
	)
	put(old, block.DataName, block.BloomPrefix+"0", block.BloomPrefix+"1")
	put(inProgress, block.DataName, block.BloomPrefix+"0", block.BloomPrefix+"1")
	put(metaAppears, block.DataName, block.BloomPrefix+"0")
	put(withMeta, block.DataName, block.MetaName)
	put(compacted, block.DataName, block.CompactedMetaName)
	// Past the grace period, and past one-second modification times.
	time.Sleep(grace + 1100*time.Millisecond)
	put(fresh, block.DataName)

	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Compaction.PartialBlockGrace = grace
	cfg.Compaction.TmpDir = t.TempDir()
	c, err := New(cfg, block.Config{BloomFP: 0.01, BloomShardSizeBytes: 1024, RowGroupSizeBytes: 16384, PageSizeBytes: 4096},
		time.Minute, be, nil, log.NewNopLogger(), nil)
	require.NoError(t, err)
	var rechecked []uuid.UUID
	c.beforeRecheck = func(_ string, id uuid.UUID) {
		rechecked = append(rechecked, id)
		switch id {
		case inProgress:
			put(id, block.BloomPrefix+"1") // an attempt has begun: its objects are fresh
		case metaAppears:
			put(id, block.MetaName)
		}
	}
	require.NoError(t, c.RunOnce(ctx))
	require.ElementsMatch(t, []uuid.UUID{old, inProgress, metaAppears}, rechecked, "blocks that passed the first check")

	count := func(id uuid.UUID) int {
		objs, err := be.ListObjects(ctx, block.BlockDir(tn, id))
		require.NoError(t, err)
		return len(objs)
	}
	for _, c := range []struct {
		name string
		id   uuid.UUID
		want int
	}{
		{"old partial block", old, 0},
		{"fresh partial block", fresh, 1},
		{"upload in progress", inProgress, 3},
		{"meta.json put meanwhile", metaAppears, 3},
		{"block with meta.json", withMeta, 2},
		{"compacted block", compacted, 2},
	} {
		require.Equal(t, c.want, count(c.id), fmt.Sprintf("%s %s", c.name, c.id))
	}
	require.Equal(t, 1.0, counterValue(t, c))

	// Disabled with grace 0: nothing is deleted even when old.
	c.cfg.Compaction.PartialBlockGrace = 0
	c.beforeRecheck = nil
	time.Sleep(grace + 1100*time.Millisecond)
	require.NoError(t, c.RunOnce(ctx))
	require.Equal(t, 1, count(fresh))
	// Enabled again: the fresh block is old by now, and goes.
	c.cfg.Compaction.PartialBlockGrace = grace
	require.NoError(t, c.RunOnce(ctx))
	require.Equal(t, 0, count(fresh))
	require.Equal(t, 0, count(inProgress), "its upload attempt stopped a grace period ago")
	require.Equal(t, 3, count(metaAppears))
	require.Equal(t, 3.0, counterValue(t, c))
}

func counterValue(t *testing.T, c *Compactor) float64 {
	var m dto.Metric
	require.NoError(t, c.metrics.partialDeleted.Write(&m))
	return m.GetCounter().GetValue()
}
