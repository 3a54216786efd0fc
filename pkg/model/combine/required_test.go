package combine

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestFillRequired(t *testing.T) {
	set := &tracev1.ResourceSpans{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "k"}}},
		ScopeSpans: []*tracev1.ScopeSpans{{
			Scope: &commonv1.InstrumentationScope{Name: "lib"},
			Spans: []*tracev1.Span{{Name: "kept", Status: &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "m"}}},
		}},
	}
	bare := &tracev1.ResourceSpans{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{Name: "a"}, {Name: "b"}}}, {}}}
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{proto.Clone(set).(*tracev1.ResourceSpans), bare}}

	FillRequired(td)

	require.True(t, proto.Equal(set, td.ResourceSpans[0]), "present messages are left as they are")
	require.NotNil(t, bare.Resource)
	require.Empty(t, bare.Resource.Attributes)
	for _, ss := range bare.ScopeSpans {
		require.NotNil(t, ss.Scope)
		require.Equal(t, "", ss.Scope.Name)
		for _, sp := range ss.Spans {
			require.NotNil(t, sp.Status)
			require.Equal(t, tracev1.Status_STATUS_CODE_UNSET, sp.Status.Code)
		}
	}
	FillRequired(nil) // no trace: nothing to do, no panic
}
