package s3

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/integration/minio"
)

// BenchmarkGetRange reads 64 KiB ranges of a 4 MiB object from MinIO on
// loopback: the cost of one ranged GET through the whole transport stack.
func BenchmarkGetRange(b *testing.B) {
	srv := minio.Start(b)
	be := newTestBackend(b, testConfig(srv, srv.NewBucket(b, "bench")), nil)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	require.NoError(b, be.Put(ctx, "bench/data.parquet", bytes.NewReader(data), int64(len(data))))
	const length = 64 << 10
	b.SetBytes(length)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		off := int64(i*length) % int64(len(data)-length)
		if _, err := be.GetRange(ctx, "bench/data.parquet", off, length); err != nil {
			b.Fatal(err)
		}
	}
}
