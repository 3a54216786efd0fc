package block

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCacheLRU(t *testing.T) {
	c := NewCache(100)
	c.put("a", 1, 40)
	c.put("b", 2, 40)
	_, ok := c.get("a") // a is now most recent
	require.True(t, ok)
	c.put("c", 3, 40) // evicts b
	_, ok = c.get("b")
	require.False(t, ok)
	v, ok := c.get("a")
	require.True(t, ok)
	require.Equal(t, 1, v)
	c.put("huge", 4, 101) // larger than the cache: not kept
	_, ok = c.get("huge")
	require.False(t, ok)
	st := c.Stats()
	require.Equal(t, 2, st.Items)
	require.EqualValues(t, 80, st.Bytes)
	require.EqualValues(t, 2, st.Hits)
	require.EqualValues(t, 2, st.Misses)

	var nilCache *Cache
	nilCache.put("x", 1, 1)
	_, ok = nilCache.get("x")
	require.False(t, ok)
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(1000)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				k := fmt.Sprint(i % 50)
				c.put(k, i, 30)
				c.get(k)
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, c.Stats().Bytes, int64(1000))
}
