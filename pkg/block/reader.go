package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/parquet-go/parquet-go"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block/pq"
)

// footerCostFactor estimates the memory of a decoded footer and page index
// from its encoded size, for cache accounting.
const footerCostFactor = 4

// streamReadBufferSize is parquet-go's read buffer per column chunk when
// streaming whole row groups: the bytes are already in memory, so the
// buffer only saves calls.
const streamReadBufferSize = 4 << 10

// Reader reads one block. It is safe for concurrent use; all state beyond
// the Meta lives in the (optional, shared) Cache.
type Reader struct {
	be      backend.Backend
	meta    *Meta
	cache   *Cache
	dataKey string
}

// Open returns a Reader of the block meta describes. It does no I/O. cache
// may be nil, in which case every call fetches what it needs.
func Open(be backend.Backend, meta *Meta, cache *Cache) *Reader {
	return &Reader{be: be, meta: meta, cache: cache, dataKey: DataKey(meta.TenantID, meta.BlockID)}
}

// Meta returns the block's Meta.
func (r *Reader) Meta() *Meta { return r.meta }

// footer is an opened data.parquet: the decoded Thrift footer and page
// index, the raw tail they came from, and the ID bounds of each row group.
type footer struct {
	file  *parquet.File
	tail  pq.Section
	idCol int
	rgs   []rowGroupInfo
}

type rowGroupInfo struct {
	min, max [TraceIDSize]byte
	off, len int64
	rows     int64
	values   int64 // values over all columns
}

// FindTraceByID returns the trace with the given ID, or nil, nil when the
// block does not hold it. It checks, in order: the meta ID range, the bloom
// shard (cached), the footer (cached) to pick the one row group whose ID
// range can hold the ID, then fetches that row group with a single ranged
// GET and decodes the one row.
func (r *Reader) FindTraceByID(ctx context.Context, traceID []byte) (*tracev1.TracesData, error) {
	return r.FindTraceByIDFunc(ctx, traceID, nil)
}

// FindTraceByIDFunc is FindTraceByID that shows each part (row) of the
// trace to admit as soon as it is decoded, before it is joined to the
// parts before it, so that the caller can bound what a big trace costs:
// admit owns the part and may remove spans from it (what is left is
// joined); when it returns false, the read stops there and returns the
// parts joined so far, this one included. A nil admit admits everything.
// Memory is then what admit keeps plus one row group and one part.
func (r *Reader) FindTraceByIDFunc(ctx context.Context, traceID []byte, admit func(part *tracev1.TracesData) bool) (*tracev1.TracesData, error) {
	if len(traceID) != TraceIDSize {
		return nil, fmt.Errorf("%w: got %d bytes", ErrInvalidTraceID, len(traceID))
	}
	if bytes.Compare(traceID, r.meta.MinID) < 0 || bytes.Compare(traceID, r.meta.MaxID) > 0 {
		return nil, nil
	}
	h := HashID(traceID)
	bloom, err := r.bloomShard(ctx, ShardOf(h, r.meta.BloomShardCount))
	if err != nil {
		return nil, err
	}
	if !bloom.Test(h) {
		return nil, nil
	}
	ft, err := r.footer(ctx)
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(ft.rgs), func(i int) bool { return bytes.Compare(ft.rgs[i].max[:], traceID) >= 0 })
	if i == len(ft.rgs) || bytes.Compare(ft.rgs[i].min[:], traceID) > 0 {
		return nil, nil
	}
	// A multi-row trace (parts.go) may go on into the next row groups:
	// those start with its ID, and each costs one more ranged GET.
	var td *tracev1.TracesData
	for ; i < len(ft.rgs) && bytes.Compare(ft.rgs[i].min[:], traceID) <= 0; i++ {
		ra, err := r.fetchRowGroup(ctx, ft, i)
		if err != nil {
			return nil, err
		}
		var more bool
		err = r.guard(func() error {
			var err error
			td, more, err = findRows(ft, i, ra, [TraceIDSize]byte(traceID), td, admit)
			return err
		})
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	return td, nil
}

// Iterate calls fn for every trace in ascending ID order. It reads one row
// group at a time (one ranged GET each), so memory stays near one row group.
// An error from fn stops the iteration and is returned as is. The traceID
// passed to fn is not reused.
func (r *Reader) Iterate(ctx context.Context, fn func(traceID []byte, tr *tracev1.TracesData) error) error {
	rr, err := r.Rows(ctx)
	if err != nil {
		return err
	}
	defer rr.Close()
	var (
		tr  traceRow
		td  *tracev1.TracesData
		cur []byte
	)
	for {
		id, row, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := reconstruct(&tr, row.flat()); err != nil {
			return &CorruptError{Key: r.dataKey, Err: fmt.Errorf("trace %x: %w", id, err)}
		}
		part, err := tr.toOTLP()
		if err != nil {
			return &CorruptError{Key: r.dataKey, Err: fmt.Errorf("trace %x: %w", id, err)}
		}
		if td == nil {
			td, cur = part, bytes.Clone(id)
		} else {
			joinPart(td, part)
		}
		next, err := rr.PeekID()
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if err == nil && bytes.Equal(next, cur) {
			continue // more parts of this trace
		}
		if err := fn(cur, td); err != nil {
			return err
		}
		td = nil
	}
}

// guard runs fn, turning a panic into a CorruptError: parquet-go is not
// hardened against every malformed page, and a corrupt object in the store
// must fail one request, not the process.
func (r *Reader) guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &CorruptError{Key: r.dataKey, Err: fmt.Errorf("decoder panic: %v", p)}
		}
	}()
	err = fn()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, ErrCorrupt) && !isBackendErr(err) {
		err = &CorruptError{Key: r.dataKey, Err: err}
	}
	return err
}

// isBackendErr tells I/O failures (to be reported as they are) from decode
// failures (reported as corruption).
func isBackendErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrOutOfRange)
}

func (r *Reader) fetchRowGroup(ctx context.Context, ft *footer, i int) (io.ReaderAt, error) {
	rg := ft.rgs[i]
	data, err := r.be.GetRange(ctx, r.dataKey, rg.off, rg.len)
	if err != nil {
		return nil, fmt.Errorf("read row group %d of %s: %w", i, r.dataKey, err)
	}
	if int64(len(data)) != rg.len {
		return nil, fmt.Errorf("read row group %d of %s: got %d of %d bytes", i, r.dataKey, len(data), rg.len)
	}
	return pq.NewObjectReaderAt(ctx, r.be, r.dataKey, r.meta.Size,
		[]pq.Section{{Off: rg.off, Data: data}, ft.tail}), nil
}

// findRows locates id in row group i using the TraceID page index, then
// decodes its rows there (several for a multi-row trace) and joins them to
// td (nil: none yet). It returns the trace (nil if absent and td is nil),
// and whether the row group ends with a row of id, so that the trace may go
// on in the next one (false too once admit, if not nil, said stop).
func findRows(ft *footer, i int, ra io.ReaderAt, id [TraceIDSize]byte, td *tracev1.TracesData, admit func(*tracev1.TracesData) bool) (*tracev1.TracesData, bool, error) {
	rg := pq.NewRangeRowGroup(ft.file.RowGroups()[i].(*parquet.FileRowGroup), ra)
	chunk := rg.ColumnChunks()[ft.idCol].(pq.RangeChunk)
	first := int64(0)
	if cidx, err := chunk.ColumnIndex(); err == nil && cidx.NumPages() > 0 {
		oidx, err := chunk.OffsetIndex()
		if err != nil || oidx.NumPages() != cidx.NumPages() {
			return td, false, fmt.Errorf("trace id offset index of row group %d: %v", i, err)
		}
		p := sort.Search(cidx.NumPages(), func(j int) bool { return bytes.Compare(cidx.MaxValue(j).ByteArray(), id[:]) >= 0 })
		if p == cidx.NumPages() {
			return td, false, nil
		}
		first = oidx.FirstRowIndex(p)
	}
	rowIndex, err := scanIDs(chunk, first, id)
	if err != nil || rowIndex < 0 {
		return td, false, err
	}
	rows := rg.Rows()
	defer rows.Close()
	if err := rows.SeekToRow(rowIndex); err != nil {
		return td, false, fmt.Errorf("seek to row %d of row group %d: %w", rowIndex, i, err)
	}
	buf := []parquet.Row{nil}
	for k := rowIndex; ; k++ {
		n, readErr := rows.ReadRows(buf)
		if n == 0 {
			if errors.Is(readErr, io.EOF) && k > rowIndex {
				return td, true, nil // the row group ends with a part of id
			}
			return td, false, fmt.Errorf("read row %d of row group %d: %w", k, i, readErr)
		}
		row := Row{vals: buf[0]}
		if err := row.check(); err != nil {
			return td, false, fmt.Errorf("row %d of row group %d: %w", k, i, err)
		}
		if !bytes.Equal(row.TraceID(), id[:]) {
			if k == rowIndex {
				return td, false, fmt.Errorf("row %d of row group %d has id %x, want %x", k, i, row.TraceID(), id)
			}
			return td, false, nil
		}
		tr := new(traceRow)
		if err := reconstruct(tr, row.vals); err != nil {
			return td, false, fmt.Errorf("row %d of row group %d: %w", k, i, err)
		}
		part, err := tr.toOTLP()
		if err != nil {
			return td, false, fmt.Errorf("row %d of row group %d: %w", k, i, err)
		}
		more := admit == nil || admit(part)
		if td == nil {
			td = part
		} else {
			joinPart(td, part)
		}
		if !more {
			return td, false, nil
		}
		if errors.Is(readErr, io.EOF) {
			return td, true, nil
		}
	}
}

// scanIDs reads TraceID pages from row first on and returns the row index of
// id in the row group, or -1.
func scanIDs(chunk pq.RangeChunk, first int64, id [TraceIDSize]byte) (int64, error) {
	pages := chunk.Pages()
	defer pages.Close()
	if err := pages.SeekToRow(first); err != nil {
		return -1, err
	}
	var vals []parquet.Value
	for {
		page, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return -1, nil
		}
		if err != nil {
			return -1, err
		}
		n := int(page.NumValues())
		if cap(vals) < n {
			vals = make([]parquet.Value, n)
		}
		vals = vals[:n]
		got, err := page.Values().ReadValues(vals)
		if got != n && err != nil && !errors.Is(err, io.EOF) {
			parquet.Release(page)
			return -1, err
		}
		for j, v := range vals[:got] {
			switch c := bytes.Compare(v.ByteArray(), id[:]); {
			case c == 0:
				parquet.Release(page)
				return first + int64(j), nil
			case c > 0:
				parquet.Release(page)
				return -1, nil
			}
		}
		first += page.NumRows()
		parquet.Release(page)
	}
}

func (r *Reader) bloomShard(ctx context.Context, shard int) (*Bloom, error) {
	key := BloomKey(r.meta.TenantID, r.meta.BlockID, shard)
	if v, ok := r.cache.get(key); ok {
		return v.(*Bloom), nil
	}
	data, err := backend.ReadAll(ctx, r.be, key)
	if err != nil {
		return nil, fmt.Errorf("read bloom shard %s: %w", key, err)
	}
	b, err := DecodeBloomShard(data)
	if err != nil {
		return nil, &CorruptError{Key: key, Err: err}
	}
	r.cache.put(key, b, b.sizeBytes())
	return b, nil
}

func (r *Reader) footer(ctx context.Context) (*footer, error) {
	if v, ok := r.cache.get(r.dataKey); ok {
		return v.(*footer), nil
	}
	ft, err := r.readFooter(ctx, false)
	if err != nil {
		return nil, err
	}
	r.cache.put(r.dataKey, ft, footerCostFactor*int64(len(ft.tail.Data))+1024)
	return ft, nil
}

// streamFooter returns the footer for reading whole row groups in order
// (Rows): the cached lookup footer if there is one, else a footer opened
// without its page index and with small read buffers, which is not cached.
// Streaming never seeks inside a column chunk, so it needs no page index,
// and its column chunks are read from memory, where big read buffers only
// cost memory (a page index of a 50 MB block decodes to ~15 MB; 64 KiB
// buffers for 91 columns are 6 MB per open row group).
func (r *Reader) streamFooter(ctx context.Context) (*footer, error) {
	if v, ok := r.cache.get(r.dataKey); ok {
		return v.(*footer), nil
	}
	ft, err := r.readFooter(ctx, true)
	if err != nil {
		return nil, err
	}
	// Streaming reads nothing more from the tail (page index and Thrift
	// footer, already decoded): let its bytes go.
	ft.tail = pq.Section{}
	return ft, nil
}

// readFooter fetches the tail of data.parquet (footer and page index) in
// one ranged read and decodes it.
func (r *Reader) readFooter(ctx context.Context, streaming bool) (*footer, error) {
	off := r.meta.Size - r.meta.FooterSize
	tail, err := r.be.GetRange(ctx, r.dataKey, off, r.meta.FooterSize)
	if err != nil {
		return nil, fmt.Errorf("read footer of %s: %w", r.dataKey, err)
	}
	var ft *footer
	err = r.guard(func() error {
		var err error
		ft, err = openFooter(ctx, r.be, r.dataKey, r.meta, pq.Section{Off: off, Data: tail}, streaming)
		return err
	})
	return ft, err
}

// openFooter decodes the Parquet footer and page index from the tail bytes
// and checks them against format v1 and the block's Meta.
func openFooter(ctx context.Context, be backend.Backend, key string, meta *Meta, tail pq.Section, streaming bool) (*footer, error) {
	if int64(len(tail.Data)) < 8 || string(tail.Data[len(tail.Data)-4:]) != "PAR1" {
		return nil, &CorruptError{Key: key, Err: errors.New("missing parquet magic at end of file")}
	}
	ra := pq.NewObjectReaderAt(ctx, be, key, meta.Size, []pq.Section{tail})
	opts := []parquet.FileOption{parquet.SkipMagicBytes(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(64 << 10)}
	if streaming {
		opts = append(opts, parquet.SkipPageIndex(true), parquet.ReadBufferSize(streamReadBufferSize))
	}
	f, err := parquet.OpenFile(ra, meta.Size, opts...)
	if err != nil {
		return nil, &CorruptError{Key: key, Err: err}
	}
	if v, _ := f.Lookup(parquetVersionKey); v != VersionV1 {
		return nil, &CorruptError{Key: key, Err: fmt.Errorf("parquet file is format %q, want %q", v, VersionV1)}
	}
	if !parquet.EqualNodes(schemaV1(), f.Schema()) {
		return nil, &CorruptError{Key: key, Err: errors.New("parquet schema is not format v1")}
	}
	leaf, ok := f.Schema().Lookup("TraceID")
	if !ok {
		return nil, &CorruptError{Key: key, Err: errors.New("no TraceID column")}
	}
	ft := &footer{file: f, tail: tail, idCol: leaf.ColumnIndex}
	md := f.Metadata()
	if len(md.RowGroups) != meta.RowGroups || md.NumRows != int64(meta.TotalObjects) {
		return nil, &CorruptError{Key: key, Err: fmt.Errorf("footer has %d row groups and %d rows, meta says %d and %d",
			len(md.RowGroups), md.NumRows, meta.RowGroups, meta.TotalObjects)}
	}
	for i := range md.RowGroups {
		rg := &md.RowGroups[i]
		info := rowGroupInfo{off: -1, rows: rg.NumRows}
		var end int64
		for j := range rg.Columns {
			c := &rg.Columns[j].MetaData
			start := pq.ChunkStart(c)
			if start < 0 || c.TotalCompressedSize < 0 || start+c.TotalCompressedSize > tail.Off {
				return nil, &CorruptError{Key: key, Err: fmt.Errorf("row group %d column %d outside the data area", i, j)}
			}
			if info.off < 0 || start < info.off {
				info.off = start
			}
			end = max(end, start+c.TotalCompressedSize)
			info.values += max(c.NumValues, 0)
		}
		if len(rg.Columns) <= ft.idCol || rg.NumRows <= 0 {
			return nil, &CorruptError{Key: key, Err: fmt.Errorf("row group %d is empty", i)}
		}
		info.len = end - info.off
		stats := &rg.Columns[ft.idCol].MetaData.Statistics
		if len(stats.MinValue) != TraceIDSize || len(stats.MaxValue) != TraceIDSize {
			return nil, &CorruptError{Key: key, Err: fmt.Errorf("row group %d has no trace id statistics", i)}
		}
		info.min, info.max = [TraceIDSize]byte(stats.MinValue), [TraceIDSize]byte(stats.MaxValue)
		if bytes.Compare(info.min[:], info.max[:]) > 0 ||
			(i > 0 && bytes.Compare(ft.rgs[i-1].max[:], info.min[:]) > 0) {
			return nil, &CorruptError{Key: key, Err: fmt.Errorf("row group %d trace ids out of order", i)}
		}
		ft.rgs = append(ft.rgs, info)
	}
	return ft, nil
}
