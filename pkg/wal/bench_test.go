package wal

import (
	"bytes"
	"fmt"
	"testing"
)

func BenchmarkAppend(b *testing.B) {
	for _, policy := range allPolicies {
		b.Run(fmt.Sprintf("policy=%s/size=4KiB", policy), func(b *testing.B) {
			w, _ := openWAL(b, testConfig(b.TempDir(), policy))
			rec := bytes.Repeat([]byte{0x5a}, 4096)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(metricValue(b, w.m.fsyncs)/float64(b.N), "fsyncs/op")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkAppendParallel shows group commit: with many appenders, the
// always policy does far fewer fsyncs than appends.
func BenchmarkAppendParallel(b *testing.B) {
	for _, policy := range allPolicies {
		b.Run(fmt.Sprintf("policy=%s/size=4KiB/goroutines=16", policy), func(b *testing.B) {
			w, _ := openWAL(b, testConfig(b.TempDir(), policy))
			rec := bytes.Repeat([]byte{0x5a}, 4096)
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			b.SetParallelism(8) // x GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := w.Append(rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(metricValue(b, w.m.fsyncs)/float64(b.N), "fsyncs/op")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	w, _ := openWAL(b, testConfig(dir, SyncNever))
	rec := bytes.Repeat([]byte{0x5a}, 4096)
	const n = 2000
	for range n {
		if _, err := w.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	r, _ := openWAL(b, testConfig(dir, SyncNever))
	b.SetBytes(n * int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		count := 0
		if err := r.Replay(func(uint64, []byte) error { count++; return nil }); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("replayed %d records, want %d", count, n)
		}
	}
}
