package backend_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
)

func TestInstrument(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b := backend.Instrument(inmem.New(), "mem", reg)
	// A second backend on the same registry shares the collectors.
	b2 := backend.Instrument(inmem.New(), "mem2", reg)
	ctx := context.Background()

	require.NoError(t, b.Put(ctx, "a/b", strings.NewReader("hello"), 5))
	_, err := backend.ReadAll(ctx, b, "a/b")
	require.NoError(t, err)
	_, err = b.Get(ctx, "missing")
	require.ErrorIs(t, err, backend.ErrNotFound)
	_, err = b.GetRange(ctx, "a/b", 4, 2)
	require.ErrorIs(t, err, backend.ErrOutOfRange)
	_, err = b.Size(ctx, "../x")
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	_, err = b.List(ctx, "a")
	require.NoError(t, err)
	objs, err := b.ListObjects(ctx, "a")
	require.NoError(t, err)
	require.Len(t, objs, 1)
	require.NoError(t, b.Delete(ctx, "a/b"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	require.Error(t, b2.Put(canceled, "x", strings.NewReader("x"), 1))

	requests := func(name, op, status string) float64 {
		return sample(t, reg, "rubato_backend_requests_total", map[string]string{"backend": name, "op": op, "status": status}).GetCounter().GetValue()
	}
	require.Equal(t, 1.0, requests("mem", "put", "ok"))
	require.Equal(t, 1.0, requests("mem", "get", "ok"))
	require.Equal(t, 1.0, requests("mem", "get", "not_found"))
	require.Equal(t, 1.0, requests("mem", "get_range", "out_of_range"))
	require.Equal(t, 1.0, requests("mem", "size", "invalid_key"))
	require.Equal(t, 1.0, requests("mem", "list", "ok"))
	require.Equal(t, 1.0, requests("mem", "list_objects", "ok"))
	require.Equal(t, 1.0, requests("mem", "delete", "ok"))
	require.Equal(t, 1.0, requests("mem2", "put", "canceled"))

	// Every call is timed: get twice, the others once.
	timed := func(name, op string) uint64 {
		return sample(t, reg, "rubato_backend_request_duration_seconds", map[string]string{"backend": name, "op": op}).GetHistogram().GetSampleCount()
	}
	require.Equal(t, uint64(2), timed("mem", "get"))
	for _, op := range []string{"put", "get_range", "size", "list", "list_objects", "delete"} {
		require.Equal(t, uint64(1), timed("mem", op), op)
	}
	require.Equal(t, uint64(1), timed("mem2", "put"))
	require.NoError(t, b.Close())
}

// sample returns the series of metric name whose labels match want.
func sample(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if maps.Equal(labels, want) {
				return m
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return nil
}

func TestStatus(t *testing.T) {
	for err, want := range map[error]string{
		nil:                 "ok",
		backend.ErrNotFound: "not_found",
		errors.Join(errors.New("x"), backend.ErrInvalidKey): "invalid_key",
		backend.ErrOutOfRange:                               "out_of_range",
		context.Canceled:                                    "canceled",
		context.DeadlineExceeded:                            "canceled",
		errors.New("disk on fire"):                          "error",
	} {
		require.Equal(t, want, backend.Status(err))
	}
}

func TestCheckRange(t *testing.T) {
	require.NoError(t, backend.CheckRange(0, 0, 0))
	require.NoError(t, backend.CheckRange(10, 0, 10))
	require.NoError(t, backend.CheckRange(2, 8, 10))
	for _, c := range [][3]int64{{-1, 1, 10}, {0, -1, 10}, {11, 0, 10}, {5, 6, 10}, {1, 1 << 62, 10}, {1 << 62, 1 << 62, 10}} {
		require.ErrorIs(t, backend.CheckRange(c[0], c[1], c[2]), backend.ErrOutOfRange, "%v", c)
	}
}
