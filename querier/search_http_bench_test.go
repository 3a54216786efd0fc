package querier

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"

	"github.com/rubatodb/rubato/pkg/tenant"
)

// BenchmarkSearchAPIOverhead is the API layer's cost per /api/search call
// (parse and validate the request, TraceQL parse, render 20 traces as
// JSON), the searcher being free.
func BenchmarkSearchAPIOverhead(b *testing.B) {
	f := &fakeSearcher{searchResp: richSearchResponse(20)}
	mux := http.NewServeMux()
	NewSearchAPI(f, defaultSearchConfig(), tenant.Resolver{}, log.NewNopLogger()).Register(mux)
	req := httptest.NewRequest("GET", `/api/search?q=%7B%20resource.service.name%20%3D%20%22svc%22%20%26%26%20duration%20%3E%2010ms%20%7D&limit=20&spss=3&start=1700000000&end=1700003600`, nil)
	b.ReportAllocs()
	for b.Loop() {
		f.searches = f.searches[:0]
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
