package querier

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// streamInterval is the shortest gap between two progress messages of a
// streamed search; progress in between is coalesced into the next one.
const streamInterval = 100 * time.Millisecond

// maxStreamMessageBytes bounds one streamed search message, as Tempo splits
// its messages (Grafana's default receive limit is 4 MiB).
var maxStreamMessageBytes = 1 << 20

// StreamingServer serves tempopb.StreamingQuerier over the same Searcher
// and with the same request rules as the HTTP API.
type StreamingServer struct {
	rubatopb.UnimplementedStreamingQuerierServer
	api *SearchAPI
}

// StreamingServer returns the gRPC StreamingQuerier of a.
func (a *SearchAPI) StreamingServer() *StreamingServer { return &StreamingServer{api: a} }

// Register registers s on a gRPC server.
func (s *StreamingServer) Register(g *grpc.Server) { rubatopb.RegisterStreamingQuerierServer(g, s) }

// grpcError turns an API error into a gRPC status.
func (s *StreamingServer) grpcError(err error) error {
	var he *httpError
	switch {
	case errors.As(err, &he):
		switch he.code {
		case http.StatusBadRequest:
			return status.Error(codes.InvalidArgument, he.msg)
		case http.StatusNotImplemented:
			return status.Error(codes.Unimplemented, he.msg)
		}
		return status.Error(codes.Internal, he.msg)
	case errors.Is(err, ErrInvalidQuery):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrTooManyRequests):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, ErrNoIngesters), errors.Is(err, ErrIngestersUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	level.Error(s.api.logger).Log("msg", "streaming search failed", "err", err)
	return status.Error(codes.Internal, "search failed: "+err.Error())
}

// begin resolves the tenant.
func (s *StreamingServer) begin(ctx context.Context) (string, error) {
	tenantID, err := s.api.tenants.FromGRPC(ctx)
	if err != nil {
		return "", status.Error(codes.Unauthenticated, err.Error())
	}
	return tenantID, nil
}

// Search streams the search: a progress message with the latest metrics
// each time the searcher reports progress (at most one per streamInterval),
// then always a final message with every result and completedJobs ==
// totalJobs. Every message carries metrics.
//
// Progress messages carry no traces: Grafana's plugin appends each
// message's traces and, for a trace ID seen twice, keeps the FIRST copy
// (removeDuplicates in its search_stream.go), so a trace sent while still
// partial (more spansets, a root found later, or later pushed out of the
// limit) would stay wrong on screen. Tempo avoids this by sending a trace
// only once every job covering it is done; Rubato's searcher merges across
// sources to the end, so only the final answer is sent.
func (s *StreamingServer) Search(in *rubatopb.SearchRequest, stream grpc.ServerStreamingServer[rubatopb.SearchResponse]) error {
	tenantID, err := s.begin(stream.Context())
	if err != nil {
		return err
	}
	req := proto.Clone(in).(*rubatopb.SearchRequest)
	if req.Query != "" && (len(req.Tags) > 0 || req.MinDurationMs != 0 || req.MaxDurationMs != 0) {
		return s.grpcError(badRequest("invalid request: can't specify tags or durations and a TraceQL query in the same search"))
	}
	if req.Query == "" {
		if req.Query, err = LegacyToTraceQL(req.Tags, req.MinDurationMs, req.MaxDurationMs); err != nil {
			return s.grpcError(badRequest("%v", err))
		}
		req.Tags, req.MinDurationMs, req.MaxDurationMs = nil, 0, 0
	}
	if err := ApplySearchLimits(req, s.api.cfg); err != nil {
		return s.grpcError(err)
	}
	if s.api.searcher == nil {
		return s.grpcError(errNoSearcher)
	}

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		mu     sync.Mutex
		latest *rubatopb.SearchMetrics // of the last progress report
		seq    int                     // bumped on each progress report
	)
	progress := func(p *rubatopb.SearchResponse) {
		// Only the metrics are streamed before the end (see above): copy
		// them, not the traces.
		m := &rubatopb.SearchMetrics{}
		if p.GetMetrics() != nil {
			m = proto.Clone(p.Metrics).(*rubatopb.SearchMetrics)
		}
		mu.Lock()
		latest = m
		seq++
		mu.Unlock()
	}
	type result struct {
		resp *rubatopb.SearchResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := s.api.searcher.Search(ctx, tenantID, req, progress)
		done <- result{resp, err}
	}()
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case res := <-done:
			if res.err != nil {
				return s.grpcError(res.err)
			}
			return sendSearch(stream, finalSearchResponse(res.resp, req))
		case <-tick.C:
			mu.Lock()
			msg, n := latest, seq
			mu.Unlock()
			if n == sent || msg == nil {
				continue
			}
			sent = n
			if err := stream.Send(&rubatopb.SearchResponse{Metrics: msg}); err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
}

// sendSearch sends resp, split into messages of at most
// maxStreamMessageBytes by traces (a single bigger trace goes alone). Every
// part carries the metrics; Grafana appends the parts' traces.
func sendSearch(stream grpc.ServerStreamingServer[rubatopb.SearchResponse], resp *rubatopb.SearchResponse) error {
	if proto.Size(resp) <= maxStreamMessageBytes {
		return stream.Send(resp)
	}
	part := &rubatopb.SearchResponse{Metrics: resp.Metrics}
	size := proto.Size(part)
	for _, t := range resp.Traces {
		n := proto.Size(t) + 8 // field tag and length
		if len(part.Traces) > 0 && size+n > maxStreamMessageBytes {
			if err := stream.Send(part); err != nil {
				return err
			}
			part = &rubatopb.SearchResponse{Metrics: resp.Metrics}
			size = proto.Size(part)
		}
		part.Traces = append(part.Traces, t)
		size += n
	}
	return stream.Send(part)
}

// finalSearchResponse is the last message: metrics present and the job
// count complete.
func finalSearchResponse(resp *rubatopb.SearchResponse, req *rubatopb.SearchRequest) *rubatopb.SearchResponse {
	resp = normalizeSearchResponse(resp, req)
	if resp.Metrics.TotalJobs == 0 {
		resp.Metrics.TotalJobs = 1
	}
	resp.Metrics.CompletedJobs = resp.Metrics.TotalJobs
	return resp
}

// completeMetadata returns m (or an empty one) with its job count complete.
func completeMetadata(m *rubatopb.MetadataMetrics) *rubatopb.MetadataMetrics {
	if m == nil {
		m = &rubatopb.MetadataMetrics{}
	}
	if m.TotalJobs == 0 {
		m.TotalJobs = 1
	}
	m.CompletedJobs = m.TotalJobs
	return m
}

func (s *StreamingServer) tagsV2(ctx context.Context, in *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if !validScopes[in.Scope] {
		return nil, s.grpcError(badRequest("invalid scope %q: want resource, span, intrinsic, event, link or instrumentation", in.Scope))
	}
	resp, err := s.api.runTagsV2(ctx, tenantID, in)
	if err != nil {
		return nil, s.grpcError(err)
	}
	resp.Metrics = completeMetadata(resp.Metrics)
	return resp, nil
}

// SearchTags answers v1 tag names in one message.
func (s *StreamingServer) SearchTags(in *rubatopb.SearchTagsRequest, stream grpc.ServerStreamingServer[rubatopb.SearchTagsResponse]) error {
	v2, err := s.tagsV2(stream.Context(), in)
	if err != nil {
		return err
	}
	return stream.Send(tagsV1FromV2(v2, in.Scope, in.MaxTagsPerScope))
}

// SearchTagsV2 answers tag names by scope in one message.
func (s *StreamingServer) SearchTagsV2(in *rubatopb.SearchTagsRequest, stream grpc.ServerStreamingServer[rubatopb.SearchTagsV2Response]) error {
	resp, err := s.tagsV2(stream.Context(), in)
	if err != nil {
		return err
	}
	return stream.Send(resp)
}

func (s *StreamingServer) tagValuesV2(ctx context.Context, in *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error) {
	tenantID, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if in.TagName == "" {
		return nil, s.grpcError(badRequest("please provide a non-empty tag name"))
	}
	resp, err := s.api.runTagValuesV2(ctx, tenantID, in)
	if err != nil {
		return nil, s.grpcError(err)
	}
	resp.Metrics = completeMetadata(resp.Metrics)
	return resp, nil
}

// SearchTagValues answers v1 (string) tag values in one message.
func (s *StreamingServer) SearchTagValues(in *rubatopb.SearchTagValuesRequest, stream grpc.ServerStreamingServer[rubatopb.SearchTagValuesResponse]) error {
	req := proto.Clone(in).(*rubatopb.SearchTagValuesRequest)
	req.TagName = V1TagName(req.TagName)
	if in.TagName == "" {
		req.TagName = ""
	}
	v2, err := s.tagValuesV2(stream.Context(), req)
	if err != nil {
		return err
	}
	return stream.Send(tagValuesV1FromV2(v2))
}

// SearchTagValuesV2 answers typed tag values in one message.
func (s *StreamingServer) SearchTagValuesV2(in *rubatopb.SearchTagValuesRequest, stream grpc.ServerStreamingServer[rubatopb.SearchTagValuesV2Response]) error {
	resp, err := s.tagValuesV2(stream.Context(), in)
	if err != nil {
		return err
	}
	return stream.Send(resp)
}

const metricsUnimplemented = "TraceQL metrics are not implemented (Rubato answers search, tag and tag-value streams)"

// MetricsQueryRange is not implemented.
func (s *StreamingServer) MetricsQueryRange(*rubatopb.QueryRangeRequest, grpc.ServerStreamingServer[rubatopb.QueryRangeResponse]) error {
	return status.Error(codes.Unimplemented, metricsUnimplemented)
}

// MetricsQueryInstant is not implemented.
func (s *StreamingServer) MetricsQueryInstant(*rubatopb.QueryInstantRequest, grpc.ServerStreamingServer[rubatopb.QueryInstantResponse]) error {
	return status.Error(codes.Unimplemented, metricsUnimplemented)
}

// NewHTTPServer returns the query port's server: one listener, two
// protocols. HTTP/1.1 and HTTP/2 requests go to h; HTTP/2 requests with
// content-type application/grpc (gRPC clients dial h2c with prior
// knowledge, as Grafana does for streaming) go to g.
func NewHTTPServer(g *grpc.Server, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				g.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}
