package traceql

import (
	"math/rand"

	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

func randomQueryForFuzz(r *rand.Rand) string {
	q, _ := traceqltest.Query(r)
	return q
}
