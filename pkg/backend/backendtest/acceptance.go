package backendtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend"
)

// Factory returns an empty backend and registers its cleanup on t.
type Factory func(t testing.TB) backend.Backend

// LargeObjectSize is the size of the object the LargeObject subtest writes: big
// enough to force a multipart upload on S3 with a 5 MiB part size.
const LargeObjectSize = 20 << 20

// AcceptanceTest runs every subtest against backends made by newBackend.
func AcceptanceTest(t *testing.T, newBackend func(t testing.TB) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"ReadAfterWrite", testReadAfterWrite},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"GetRange", testGetRange},
		{"GetRangeEmptyObject", testGetRangeEmptyObject},
		{"List", testList},
		{"ListEdgeCases", testListEdgeCases},
		{"ListObjects", testListObjects},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"PutSizeMismatch", testPutSizeMismatch},
		{"FailedPutKeepsOld", testFailedPutKeepsOld},
		{"LargeObject", testLargeObject},
		{"ConcurrentDistinctKeys", testConcurrentDistinctKeys},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"ContextCanceled", testContextCanceled},
		{"CancelDuringPut", testCancelDuringPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			require.NotNil(t, b)
			tc.fn(t, b)
		})
	}
}

func put(t testing.TB, b backend.Backend, key string, data []byte) {
	t.Helper()
	require.NoError(t, b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))), "put %q", key)
}

func get(t testing.TB, b backend.Backend, key string) []byte {
	t.Helper()
	data, err := backend.ReadAll(context.Background(), b, key)
	require.NoError(t, err, "get %q", key)
	return data
}

func list(t testing.TB, b backend.Backend, dir string) []string {
	t.Helper()
	keys, err := b.List(context.Background(), dir)
	require.NoError(t, err, "list %q", dir)
	require.NotNil(t, keys, "list %q returned nil", dir)
	require.True(t, sort.StringsAreSorted(keys), "list %q not sorted: %q", dir, keys)
	return keys
}

// pattern returns n bytes that differ at every offset modulo 251, so a read at
// a wrong offset cannot match.
func pattern(n int, seed byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(i%251) ^ seed
	}
	return out
}

func randomBytes(n int, seed uint64) []byte {
	out := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1, 2, 3})
	_, _ = r.Read(out)
	return out
}

func testReadAfterWrite(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	cases := []struct {
		key  string
		data []byte
	}{
		{"top", []byte("top-level object")},
		{"tenant/block/meta.json", []byte(`{"version":"v1"}`)},
		{"a/b/c/d/e/f", pattern(4097, 7)},
		{"empty/object", []byte{}},
		{"spaces and+plus/%25 ?&=#;,:@!$'()*~.json", []byte("odd characters survive")},
		{"ünïcødé/ключ/日本", []byte("unicode")},
		{"dots/..../.x/x..", []byte("dots that are not . or ..")},
	}
	for _, c := range cases {
		put(t, b, c.key, c.data)
	}
	for _, c := range cases {
		require.Equal(t, c.data, get(t, b, c.key), "get %q", c.key)
		size, err := b.Size(ctx, c.key)
		require.NoError(t, err)
		require.Equal(t, int64(len(c.data)), size, "size %q", c.key)
	}
}

func testOverwrite(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	const key = "t/over/write"
	for i, n := range []int{10, 100_000, 3, 0, 77} {
		data := pattern(n, byte(i+1))
		put(t, b, key, data)
		require.Equal(t, data, get(t, b, key), "after write %d", i)
		size, err := b.Size(ctx, key)
		require.NoError(t, err)
		require.Equal(t, int64(n), size)
	}
	require.Equal(t, []string{"t/over/write"}, list(t, b, "t/over"))
}

func requireNotFound(t testing.TB, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.True(t, errors.Is(err, backend.ErrNotFound), "%s: want ErrNotFound, got %v", what, err)
}

func testNotFound(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	put(t, b, "dir/sub/obj", []byte("x"))
	for _, key := range []string{"missing", "dir/missing", "nodir/a/b", "dir/sub", "dir", "dir/sub/obj/deeper"} {
		_, err := b.Get(ctx, key)
		requireNotFound(t, err, "get "+key)
		_, err = b.GetRange(ctx, key, 0, 1)
		requireNotFound(t, err, "get range "+key)
		_, err = b.GetRange(ctx, key, 0, 0)
		requireNotFound(t, err, "zero-length get range "+key)
		_, err = b.Size(ctx, key)
		requireNotFound(t, err, "size "+key)
	}
}

func testGetRange(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	const key = "range/obj"
	data := pattern(1000, 3)
	put(t, b, key, data)
	ok := []struct {
		name        string
		off, length int64
	}{
		{"start", 0, 10},
		{"middle", 500, 123},
		{"end", 990, 10},
		{"last byte", 999, 1},
		{"whole", 0, 1000},
		{"zero length at start", 0, 0},
		{"zero length in middle", 400, 0},
		{"zero length at end", 1000, 0},
	}
	for _, c := range ok {
		got, err := b.GetRange(ctx, key, c.off, c.length)
		require.NoError(t, err, c.name)
		require.Len(t, got, int(c.length), c.name)
		require.Equal(t, data[c.off:c.off+c.length], got, c.name)
	}
	bad := []struct {
		name        string
		off, length int64
	}{
		{"past end by one", 990, 11},
		{"starts at end", 1000, 1},
		{"starts past end", 2000, 1},
		{"zero length past end", 1001, 0},
		{"negative offset", -1, 5},
		{"negative length", 5, -1},
		{"huge length", 1, 1 << 62},
	}
	for _, c := range bad {
		_, err := b.GetRange(ctx, key, c.off, c.length)
		require.Error(t, err, c.name)
		require.True(t, errors.Is(err, backend.ErrOutOfRange), "%s: want ErrOutOfRange, got %v", c.name, err)
	}
	// A ranged read is a copy: changing it must not change the object.
	got, err := b.GetRange(ctx, key, 0, 10)
	require.NoError(t, err)
	got[0] ^= 0xff
	require.Equal(t, data, get(t, b, key))
}

func testGetRangeEmptyObject(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	put(t, b, "empty", nil)
	got, err := b.GetRange(ctx, "empty", 0, 0)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = b.GetRange(ctx, "empty", 0, 1)
	require.ErrorIs(t, err, backend.ErrOutOfRange)
}

func testList(t *testing.T, b backend.Backend) {
	for _, key := range []string{
		"t1/b1/meta.json", "t1/b1/data.parquet", "t1/b1/bloom-0",
		"t1/b2/meta.json", "t1/index.json.gz",
		"t2/b9/deep/deeper/x",
		"top",
	} {
		put(t, b, key, []byte(key))
	}
	cases := []struct {
		dir  string
		want []string
	}{
		{"", []string{"t1/", "t2/", "top"}},
		{"t1", []string{"t1/b1/", "t1/b2/", "t1/index.json.gz"}},
		{"t1/", []string{"t1/b1/", "t1/b2/", "t1/index.json.gz"}},
		{"t1/b1", []string{"t1/b1/bloom-0", "t1/b1/data.parquet", "t1/b1/meta.json"}},
		{"t2", []string{"t2/b9/"}},
		{"t2/b9/deep", []string{"t2/b9/deep/deeper/"}},
		{"absent", []string{}},
		{"absent/deeper", []string{}},
		{"t1/b", []string{}}, // a name prefix is not a directory
		{"top", []string{}},  // an object is not a directory
		{"t1/b1/meta.json", []string{}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, list(t, b, c.dir), "list %q", c.dir)
	}
}

func testListEdgeCases(t *testing.T, b backend.Backend) {
	// "/" (0x2f) sorts after "-" and "." but the bare name "b" sorts before
	// "b-x": order is by the returned strings, trailing "/" included.
	for _, key := range []string{"d/b.json", "d/b/x", "d/b/y", "d/b-x", "d/a", "d/c/z/z"} {
		put(t, b, key, []byte("v"))
	}
	require.Equal(t, []string{"d/a", "d/b-x", "d/b.json", "d/b/", "d/c/"}, list(t, b, "d"))
	// Many children: no duplicates, all present, sorted.
	var want []string
	for i := range 120 {
		key := fmt.Sprintf("many/%03d", i)
		if i%3 == 0 {
			put(t, b, key+"/child", nil)
			key += "/"
		} else {
			put(t, b, key, nil)
		}
		want = append(want, key)
	}
	require.Equal(t, want, list(t, b, "many"))
}

// clockSlack allows for a store whose clock differs a little from ours,
// and for stores that keep modification times to the second.
const clockSlack = 2 * time.Second

func testListObjects(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	before := time.Now()
	for _, key := range []string{"t/b/data.parquet", "t/b/bloom-0", "t/b/sub/x", "t/b/meta.json", "t/bb/y", "t/top"} {
		put(t, b, key, []byte(key))
	}
	after := time.Now()
	objs, err := b.ListObjects(ctx, "t/b")
	require.NoError(t, err)
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
		require.Equal(t, int64(len(o.Key)), o.Size, "size of %q", o.Key)
		require.False(t, o.LastModified.Before(before.Add(-clockSlack)), "%q modified %v, before the put at %v", o.Key, o.LastModified, before)
		require.False(t, o.LastModified.After(after.Add(clockSlack)), "%q modified %v, after the put at %v", o.Key, o.LastModified, after)
	}
	// Objects only, in List's order; "directories" and siblings are not listed.
	require.Equal(t, []string{"t/b/bloom-0", "t/b/data.parquet", "t/b/meta.json"}, keys)
	objs, err = b.ListObjects(ctx, "t/")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.Equal(t, "t/top", objs[0].Key)

	// Replacing an object makes it newer: the janitor relies on this to
	// leave alone blocks whose upload is being retried.
	old := objs[0].LastModified
	time.Sleep(1100 * time.Millisecond) // past stores' one-second granularity
	put(t, b, "t/top", []byte("again"))
	objs, err = b.ListObjects(ctx, "t")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.Equal(t, int64(5), objs[0].Size)
	require.True(t, objs[0].LastModified.After(old), "replaced object modified %v, not after %v", objs[0].LastModified, old)

	// Absent directories list empty; deleted objects are gone.
	for _, dir := range []string{"absent", "absent/deeper", "t/top", "t/b/meta.json"} {
		objs, err := b.ListObjects(ctx, dir)
		require.NoError(t, err, dir)
		require.NotNil(t, objs, dir)
		require.Empty(t, objs, dir)
	}
	require.NoError(t, b.Delete(ctx, "t/b/meta.json"))
	objs, err = b.ListObjects(ctx, "t/b/")
	require.NoError(t, err)
	require.Len(t, objs, 2)
	_, err = b.ListObjects(ctx, "a//b")
	require.ErrorIs(t, err, backend.ErrInvalidKey)
}

func testDelete(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	require.NoError(t, b.Delete(ctx, "never/existed"))
	require.NoError(t, b.Delete(ctx, "never"))

	put(t, b, "a/b/c", []byte("1"))
	put(t, b, "a/b/d", []byte("2"))
	put(t, b, "a/e", []byte("3"))

	require.NoError(t, b.Delete(ctx, "a/b/c"))
	_, err := b.Get(ctx, "a/b/c")
	requireNotFound(t, err, "get deleted")
	require.Equal(t, []string{"a/b/d"}, list(t, b, "a/b"))
	require.Equal(t, []byte("2"), get(t, b, "a/b/d"))
	require.NoError(t, b.Delete(ctx, "a/b/c"), "second delete")

	// The last object of a "directory" takes the directory with it.
	require.NoError(t, b.Delete(ctx, "a/b/d"))
	require.Equal(t, []string{}, list(t, b, "a/b"))
	require.Equal(t, []string{"a/e"}, list(t, b, "a"))
	require.NoError(t, b.Delete(ctx, "a/e"))
	require.Equal(t, []string{}, list(t, b, "a"))
	require.Equal(t, []string{}, list(t, b, ""))

	// Deleting a "directory" name deletes nothing.
	put(t, b, "x/y", []byte("keep"))
	require.NoError(t, b.Delete(ctx, "x"))
	require.Equal(t, []byte("keep"), get(t, b, "x/y"))

	// A key can be written again after deletion.
	put(t, b, "a/b/c", []byte("again"))
	require.Equal(t, []byte("again"), get(t, b, "a/b/c"))
}

// InvalidKeys are keys every backend must reject with ErrInvalidKey.
var InvalidKeys = []string{
	"", "/", "/a", "a/", "a//b", "//", "../x", "a/../b", "a/..", "..",
	".", "./a", "a/./b", "a/.", "a\x00b", "a\nb", "a\tb", "\x7f", "a\\b", "..\\x",
}

func testInvalidKeys(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	for _, key := range InvalidKeys {
		requireInvalid := func(err error, op string) {
			t.Helper()
			require.Error(t, err, "%s %q", op, key)
			require.True(t, errors.Is(err, backend.ErrInvalidKey), "%s %q: want ErrInvalidKey, got %v", op, key, err)
		}
		requireInvalid(b.Put(ctx, key, strings.NewReader("x"), 1), "put")
		_, err := b.Get(ctx, key)
		requireInvalid(err, "get")
		_, err = b.GetRange(ctx, key, 0, 1)
		requireInvalid(err, "get range")
		_, err = b.Size(ctx, key)
		requireInvalid(err, "size")
		requireInvalid(b.Delete(ctx, key), "delete")
		if key != "" && key != "a/" && key != "/" {
			_, err = b.List(ctx, key)
			requireInvalid(err, "list")
		}
	}
	// Nothing was written anywhere.
	require.Equal(t, []string{}, list(t, b, ""))
}

func testPutSizeMismatch(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	require.Error(t, b.Put(ctx, "short", strings.NewReader("12345"), 10), "body shorter than size")
	_, err := b.Get(ctx, "short")
	requireNotFound(t, err, "short body stored")
	require.Error(t, b.Put(ctx, "long", strings.NewReader("1234567890"), 5), "body longer than size")
	_, err = b.Get(ctx, "long")
	requireNotFound(t, err, "long body stored")

	put(t, b, "kept", []byte("old"))
	require.Error(t, b.Put(ctx, "kept", strings.NewReader("new!"), 9))
	require.Equal(t, []byte("old"), get(t, b, "kept"))
	require.Equal(t, []string{"kept"}, list(t, b, ""))
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	f.n -= k
	return k, nil
}

func testFailedPutKeepsOld(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	errBoom := errors.New("reader broke")
	put(t, b, "obj", []byte("old value"))
	for _, size := range []int64{4096, -1} {
		err := b.Put(ctx, "obj", &failingReader{n: 1000, err: errBoom}, size)
		require.Error(t, err, "size %d", size)
		require.Equal(t, []byte("old value"), get(t, b, "obj"), "size %d", size)
		err = b.Put(ctx, "fresh", &failingReader{n: 1000, err: errBoom}, size)
		require.Error(t, err, "size %d", size)
		_, err = b.Get(ctx, "fresh")
		requireNotFound(t, err, "failed put created an object")
	}
	require.Equal(t, []string{"obj"}, list(t, b, ""))
}

func testLargeObject(t *testing.T, b backend.Backend) {
	if testing.Short() {
		t.Skip("large object skipped in -short mode")
	}
	ctx := context.Background()
	data := randomBytes(LargeObjectSize, 1)
	put(t, b, "big/known-size", data)
	got := get(t, b, "big/known-size")
	require.Equal(t, sha256.Sum256(data), sha256.Sum256(got), "known-size round trip")

	size, err := b.Size(ctx, "big/known-size")
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), size)
	for _, r := range [][2]int64{{5<<20 - 7, 1<<20 + 13}, {0, 1}, {int64(len(data)) - 100, 100}, {16<<20 - 1, 2}} {
		part, err := b.GetRange(ctx, "big/known-size", r[0], r[1])
		require.NoError(t, err)
		require.True(t, bytes.Equal(data[r[0]:r[0]+r[1]], part), "range %v", r)
	}

	// Unknown size: the reader hides its length and type.
	data2 := randomBytes(LargeObjectSize-12345, 2)
	require.NoError(t, b.Put(ctx, "big/unknown-size", struct{ io.Reader }{bytes.NewReader(data2)}, -1))
	got = get(t, b, "big/unknown-size")
	require.Equal(t, sha256.Sum256(data2), sha256.Sum256(got), "unknown-size round trip")
	require.Equal(t, []string{"big/known-size", "big/unknown-size"}, list(t, b, "big"))
}

func runAll(n int, fn func(i int) error) error {
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- fn(i) }()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func testConcurrentDistinctKeys(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	const writers, perWriter = 8, 6
	err := runAll(writers, func(w int) error {
		for k := range perWriter {
			key := fmt.Sprintf("conc/w%d/k%d", w, k)
			data := pattern(1000+w*100+k, byte(w*perWriter+k))
			if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
				return err
			}
			got, err := backend.ReadAll(ctx, b, key)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, data) {
				return fmt.Errorf("%s: read back %d bytes that differ", key, len(got))
			}
		}
		return nil
	})
	require.NoError(t, err)
	var want []string
	for w := range writers {
		want = append(want, fmt.Sprintf("conc/w%d/", w))
		for k := range perWriter {
			require.Equal(t, pattern(1000+w*100+k, byte(w*perWriter+k)), get(t, b, fmt.Sprintf("conc/w%d/k%d", w, k)))
		}
	}
	require.Equal(t, want, list(t, b, "conc"))
}

// uniformValue is writer i's value: (64 KiB + 1000*i) copies of byte 'A'+i.
func uniformValue(i int) []byte {
	return bytes.Repeat([]byte{byte('A' + i)}, 64<<10+1000*i)
}

// checkUniform reports whether data is exactly one writer's whole value.
func checkUniform(data []byte, writers int) error {
	if len(data) == 0 {
		return errors.New("empty read")
	}
	i := int(data[0] - 'A')
	if i < 0 || i >= writers {
		return fmt.Errorf("first byte %q belongs to no writer", data[0])
	}
	if !bytes.Equal(data, uniformValue(i)) {
		return fmt.Errorf("read %d bytes starting with %q: not writer %d's whole value (mixed or partial)", len(data), data[0], i)
	}
	return nil
}

func testConcurrentSameKey(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	const key, writers, rounds, readers = "same/key", 6, 3, 3
	put(t, b, key, uniformValue(0))
	done := make(chan struct{})
	readErrs := make(chan error, readers)
	for range readers {
		go func() {
			for {
				select {
				case <-done:
					readErrs <- nil
					return
				default:
				}
				data, err := backend.ReadAll(ctx, b, key)
				if err == nil {
					err = checkUniform(data, writers)
				}
				if err != nil {
					readErrs <- err
					return
				}
			}
		}()
	}
	err := runAll(writers, func(w int) error {
		v := uniformValue(w)
		for range rounds {
			if err := b.Put(ctx, key, bytes.NewReader(v), int64(len(v))); err != nil {
				return err
			}
		}
		return nil
	})
	close(done)
	for range readers {
		require.NoError(t, <-readErrs, "concurrent reader")
	}
	require.NoError(t, err)
	require.NoError(t, checkUniform(get(t, b, key), writers), "final value")
	require.Equal(t, []string{key}, list(t, b, "same"))
}

func testContextCanceled(t *testing.T, b backend.Backend) {
	put(t, b, "c/existing", []byte("still here"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	requireCanceled := func(err error, op string) {
		t.Helper()
		require.Error(t, err, op)
		require.True(t, errors.Is(err, context.Canceled), "%s: want context.Canceled, got %v", op, err)
	}
	requireCanceled(b.Put(ctx, "c/new", strings.NewReader("x"), 1), "put")
	requireCanceled(b.Put(ctx, "c/existing", strings.NewReader("x"), 1), "put over existing")
	_, err := b.Get(ctx, "c/existing")
	requireCanceled(err, "get")
	_, err = b.GetRange(ctx, "c/existing", 0, 1)
	requireCanceled(err, "get range")
	_, err = b.Size(ctx, "c/existing")
	requireCanceled(err, "size")
	_, err = b.List(ctx, "c")
	requireCanceled(err, "list")
	requireCanceled(b.Delete(ctx, "c/existing"), "delete")

	require.Equal(t, []string{"c/existing"}, list(t, b, "c"))
	require.Equal(t, []byte("still here"), get(t, b, "c/existing"))
}

// cancelingReader cancels its context once after the first chunk and keeps
// yielding data, as if the caller gave up while the body was still flowing.
type cancelingReader struct {
	r      io.Reader
	cancel context.CancelFunc
	reads  int
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	c.reads++
	if c.reads == 2 {
		c.cancel()
	}
	return c.r.Read(p[:min(len(p), 4096)])
}

func testCancelDuringPut(t *testing.T, b backend.Backend) {
	put(t, b, "obj", []byte("old value"))
	for _, size := range []int64{64 << 10, -1} {
		ctx, cancel := context.WithCancel(context.Background())
		body := &cancelingReader{r: bytes.NewReader(pattern(64<<10, 9)), cancel: cancel}
		err := b.Put(ctx, "obj", body, size)
		cancel()
		require.Error(t, err, "size %d", size)
		require.True(t, errors.Is(err, context.Canceled), "size %d: want context.Canceled, got %v", size, err)
		require.Equal(t, []byte("old value"), get(t, b, "obj"), "size %d", size)
	}
	require.Equal(t, []string{"obj"}, list(t, b, ""))
}
