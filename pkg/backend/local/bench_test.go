package local

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func BenchmarkGetRange(b *testing.B) {
	be := newLocal(b, b.TempDir())
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

// BenchmarkPut shows the cost of durability: every Put fsyncs the file and
// its directory; the first Put in a new directory also fsyncs the
// directories above it (new-dir), once per directory and process.
func BenchmarkPut(b *testing.B) {
	data := bytes.Repeat([]byte{0x5a}, 16<<10)
	for _, tc := range []struct {
		name string
		key  func(i int) string
	}{
		{"existing-dir", func(int) string { return "tenant/block/meta.json" }},
		{"new-dir", func(i int) string { return fmt.Sprintf("tenant/block-%d/meta.json", i) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := newLocal(b, b.TempDir())
			ctx := context.Background()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := be.Put(ctx, tc.key(i), bytes.NewReader(data), int64(len(data))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
