package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/block"
)

// verifySoak checks that every acknowledged trace is stored with exactly
// spansPer spans, after the final flush and stop (the WAL is empty, so
// everything is in backend blocks). A lookup per trace through the API
// would take hours for millions of traces, so it reads every live block
// (meta.json, no meta.compacted.json) of the local backend once, row by
// row, with pkg/block's reader, and counts each acknowledged trace's
// copies and their span counts. Each request carries whole traces, so
// every copy of a trace must hold all of its spans. A trace with no copy,
// or a copy of another count, is then looked up through the restarted
// server (which combines and deduplicates copies); it is lost unless that
// answer has exactly spansPer spans. A random sample of acknowledged
// traces is looked up through the API as well.
func verifySoak(ctx context.Context, s *server, dir string, acked *ackedSet, spansPer int) (lost int, err error) {
	t0 := time.Now()
	acked.mu.Lock()
	ids := acked.ids
	acked.mu.Unlock()
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	copies := make([]uint8, len(ids))
	wrong := make([]bool, len(ids))
	wrongCounts := map[int]int{} // span count of a wrong copy: copies

	root := filepath.Join(dir, "blocks")
	be, err := local.New(local.Config{Path: root}, nil)
	if err != nil {
		return 0, err
	}
	cache := block.NewCache(64 << 20)
	var blocks, rows, unknown, copiesTotal int
	tenants, err := os.ReadDir(root)
	if err != nil {
		return 0, err
	}
	for _, t := range tenants {
		if !t.IsDir() {
			continue
		}
		dirs, err := os.ReadDir(filepath.Join(root, t.Name()))
		if err != nil {
			return 0, err
		}
		for _, d := range dirs {
			if !d.IsDir() {
				continue // the tenant index
			}
			bdir := filepath.Join(root, t.Name(), d.Name())
			if _, err := os.Stat(filepath.Join(bdir, block.CompactedMetaName)); err == nil {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(bdir, block.MetaName))
			if errors.Is(err, os.ErrNotExist) {
				continue // a partial upload: invisible to readers
			} else if err != nil {
				return 0, err
			}
			meta, err := block.ParseMeta(raw)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", bdir, err)
			}
			blocks++
			n, err := scanBlock(ctx, block.Open(be, meta, cache), func(id []byte, spans int) {
				i, ok := slices.BinarySearchFunc(ids, [16]byte(id), func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
				if !ok {
					unknown++ // sent but not acknowledged (in flight at the end)
					return
				}
				copiesTotal++
				if copies[i] < 255 {
					copies[i]++
				}
				if spans != spansPer {
					wrong[i] = true
					wrongCounts[spans]++
				}
			})
			rows += n
			if err != nil {
				return 0, fmt.Errorf("read block %s: %w", bdir, err)
			}
		}
	}
	var suspects [][16]byte
	multi, missing := 0, 0
	for i := range ids {
		if copies[i] == 0 || wrong[i] {
			suspects = append(suspects, ids[i])
		}
		if copies[i] == 0 {
			missing++
		}
		if copies[i] > 1 {
			multi++
		}
	}
	fmt.Printf("verify:   %d acknowledged traces; %d live blocks, %d rows read in %s: %d copies of acknowledged traces (%d traces in more than one block), %d traces not acknowledged; %d acknowledged traces in no block; copies with a span count other than %d (span count: copies): %v\n",
		len(ids), blocks, rows, time.Since(t0).Round(time.Second), copiesTotal, multi, unknown, missing, spansPer, wrongCounts)

	// Through the API: every suspect, and a random sample.
	if err := s.start(); err != nil {
		return 0, err
	}
	defer s.stop()
	client := &http.Client{Timeout: time.Minute}
	const maxSuspects = 10_000
	for i, id := range suspects {
		if i >= maxSuspects {
			lost += len(suspects) - maxSuspects
			fmt.Printf("verify:   %d more suspects not looked up, counted as lost\n", len(suspects)-maxSuspects)
			break
		}
		n, status, err := lookupSpans(ctx, client, s, id[:])
		if err != nil || status != http.StatusOK || n != spansPer {
			lost++
			if lost <= 20 {
				fmt.Printf("verify:   LOST %x: HTTP %d, %d spans (want %d), err %v\n", id, status, n, spansPer, err)
			}
		}
	}
	sample := min(2000, len(ids))
	bad := 0
	for range sample {
		id := ids[mrand.IntN(len(ids))]
		n, status, err := lookupSpans(ctx, client, s, id[:])
		if err != nil || status != http.StatusOK || n != spansPer {
			bad++
			if bad <= 20 {
				fmt.Printf("verify:   lookup %x after restart: HTTP %d, %d spans (want %d), err %v\n", id, status, n, spansPer, err)
			}
		}
	}
	lost += bad
	fmt.Printf("verify:   %d suspects looked up through the API, %d random acknowledged traces looked up after a restart (%d wrong); %d lost\n",
		min(len(suspects), maxSuspects), sample, bad, lost)
	return lost, nil
}

// scanBlock calls fn with each trace of the block and its span count,
// joining a trace stored as several rows. It returns the rows read.
func scanBlock(ctx context.Context, r *block.Reader, fn func(id []byte, spans int)) (int, error) {
	rr, err := r.Rows(ctx)
	if err != nil {
		return 0, err
	}
	defer rr.Close()
	var cur []byte
	spans, rows := 0, 0
	for {
		id, row, err := rr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rows, err
		}
		rows++
		if cur != nil && !bytes.Equal(cur, id) {
			fn(cur, spans)
			spans = 0
		}
		cur = append(cur[:0], id...)
		spans += row.SpanCount()
	}
	if cur != nil {
		fn(cur, spans)
	}
	return rows, nil
}
