package otlp

import (
	"mime"
	"net/http"
	"strconv"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/pkg/model/otlpjson"
	"github.com/rubatodb/rubato/pkg/tenant"
)

const (
	ctProtobuf = "application/x-protobuf"
	ctJSON     = "application/json"
)

type httpHandler struct {
	sink   *receiver.Sink
	limit  int64
	logger log.Logger
}

func (h *httpHandler) mux() http.Handler {
	m := http.NewServeMux()
	m.Handle("/v1/traces", h)
	return m
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := mt == ctJSON
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, isJSON, http.StatusMethodNotAllowed, codes.Unimplemented, "method "+r.Method+" not allowed, use POST")
		return
	}
	if mt != ctProtobuf && mt != ctJSON && mt != "application/protobuf" {
		h.fail(w, false, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			"unsupported content type "+strconv.Quote(r.Header.Get("Content-Type"))+", use "+ctProtobuf+" or "+ctJSON)
		return
	}
	body, err := receiver.ReadBody(r, h.limit)
	if err != nil {
		code := receiver.BodyErrorStatus(err)
		if code == http.StatusBadRequest {
			h.sink.Malformed()
		}
		h.fail(w, isJSON, code, codes.InvalidArgument, err.Error())
		return
	}
	if rc, ok := h.sink.Raw(); ok && !isJSON {
		h.serveRaw(w, r, rc, body)
		return
	}
	var req *coltracepb.ExportTraceServiceRequest
	if isJSON {
		req, err = otlpjson.Decode(body)
	} else {
		req = &coltracepb.ExportTraceServiceRequest{}
		err = proto.Unmarshal(body, req)
	}
	if err != nil {
		h.sink.Malformed()
		h.fail(w, isJSON, http.StatusBadRequest, codes.InvalidArgument, "decode request: "+err.Error())
		return
	}
	rejected, msg, err := h.sink.ConsumeHTTP(r, req)
	if err != nil {
		h.failConsumer(w, isJSON, err)
		return
	}
	h.write(w, isJSON, http.StatusOK, response(rejected, msg))
}

// serveRaw hands an undecoded protobuf body to a RawConsumer.
func (h *httpHandler) serveRaw(w http.ResponseWriter, r *http.Request, rc receiver.RawConsumer, body []byte) {
	id, err := h.sink.Tenants.FromHTTP(r)
	if err == nil {
		var rejected int64
		var msg string
		rejected, msg, err = h.sink.ConsumeRaw(tenant.WithTenant(r.Context(), id), rc, body)
		if err == nil {
			h.write(w, false, http.StatusOK, response(rejected, msg))
			return
		}
	} else {
		err = receiver.TenantError(err)
	}
	h.failConsumer(w, false, err)
}

// failConsumer answers a Consumer error: its HTTP status, Retry-After when
// it carries RetryInfo, and the whole google.rpc.Status (details included)
// as the body.
func (h *httpHandler) failConsumer(w http.ResponseWriter, isJSON bool, err error) {
	receiver.SetRetryAfter(w.Header(), err)
	h.write(w, isJSON, receiver.HTTPStatus(err), grpcstatus.Convert(err).Proto())
}

func (h *httpHandler) fail(w http.ResponseWriter, isJSON bool, httpCode int, code codes.Code, msg string) {
	h.write(w, isJSON, httpCode, &rpcstatus.Status{Code: int32(code), Message: msg})
}

func (h *httpHandler) write(w http.ResponseWriter, isJSON bool, httpCode int, m proto.Message) {
	var out []byte
	var err error
	if isJSON {
		w.Header().Set("Content-Type", ctJSON)
		out, err = protojson.Marshal(m)
	} else {
		w.Header().Set("Content-Type", ctProtobuf)
		out, err = proto.Marshal(m)
	}
	if err != nil {
		level.Error(h.logger).Log("msg", "encode OTLP HTTP response", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(httpCode)
	_, _ = w.Write(out)
}
