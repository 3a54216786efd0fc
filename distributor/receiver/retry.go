package receiver

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of Rubato's errors.
const ErrorDomain = "rubato"

// ReasonRequestTooLarge is the google.rpc.ErrorInfo reason of a
// FailedPrecondition error whose request can never be accepted as sent
// (larger than the tenant's burst): HTTP 413, and never retried.
const ReasonRequestTooLarge = "REQUEST_TOO_LARGE"

// RetryDelay returns the delay of a google.rpc.RetryInfo carried by a
// Consumer error, if any.
func RetryDelay(err error) (time.Duration, bool) {
	s, ok := status.FromError(err)
	if !ok || err == nil {
		return 0, false
	}
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// RetryAfterSeconds is a delay as HTTP Retry-After seconds, rounded up, at
// least 1.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// SetRetryAfter sets the Retry-After header from the RetryInfo of err.
func SetRetryAfter(h http.Header, err error) {
	if d, ok := RetryDelay(err); ok {
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds(d)))
	}
}

// HTTPError answers a Consumer error as plain text, with HTTPStatus and,
// when the error carries RetryInfo, Retry-After.
func HTTPError(w http.ResponseWriter, err error) {
	SetRetryAfter(w.Header(), err)
	http.Error(w, Message(err), HTTPStatus(err))
}

func hasErrorReason(err error, reason string) bool {
	s, ok := status.FromError(err)
	if !ok || s.Code() == codes.OK {
		return false
	}
	for _, d := range s.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain && ei.GetReason() == reason {
			return true
		}
	}
	return false
}
