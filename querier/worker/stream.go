package worker

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// drainGrace is how long a drained stream waits, its side closed, for the
// frontend to end it before cutting it off.
const drainGrace = 5 * time.Second

// process serves one Process stream to f until it breaks, ctx ends, or f
// drains: it runs the job sent, cancels it when asked, and answers each job
// once. A drained stream closes its side once no job is in flight (the
// running job's answer has been sent), so no work is lost; ctx ending cancels
// the running job instead, and the broken stream hands it back. served
// reports whether any job was taken (the connection worked).
func (w *Worker) process(ctx context.Context, f *frontend) (served bool, err error) {
	ctx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	// A frontend drained while its stream is being opened (its address
	// gone, perhaps unreachable) is given up at once.
	giveUp := context.AfterFunc(f.drainCtx, cancelStream)
	stream, err := rubatopb.NewFrontendClient(f.conn).Process(ctx)
	if !giveUp() || err != nil {
		return false, err
	}
	var (
		sendMu sync.Mutex
		wg     sync.WaitGroup
		runMu  sync.Mutex
		// running holds the jobs in flight: received and not yet
		// answered on the stream.
		running  = map[uint64]context.CancelFunc{}
		answered = make(chan struct{}, 1)
	)
	// Every goroutine ends before process returns (cancelStream first).
	defer wg.Wait()
	defer cancelStream()

	// Drain: once f drains and no job is in flight, close this side of
	// the stream (the frontend sees io.EOF, gives any job it sends after
	// that to another worker, and ends the stream: Recv below returns).
	closed := false // under runMu: run no further job
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-f.drainCtx.Done():
		case <-ctx.Done():
			return
		}
		for {
			runMu.Lock()
			if len(running) == 0 {
				closed = true
				runMu.Unlock()
				sendMu.Lock()
				err := stream.CloseSend()
				sendMu.Unlock()
				if err != nil {
					cancelStream()
					return
				}
				// A frontend that does not end the stream is cut off.
				grace := time.NewTimer(drainGrace)
				defer grace.Stop()
				select {
				case <-grace.C:
					cancelStream()
				case <-ctx.Done():
				}
				return
			}
			runMu.Unlock()
			select {
			case <-answered:
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		msg, err := stream.Recv()
		if err != nil {
			return served, err
		}
		if msg.GetCancel() {
			runMu.Lock()
			if c := running[msg.GetJobId()]; c != nil {
				c()
			}
			runMu.Unlock()
			continue
		}
		runMu.Lock()
		if closed || f.draining() {
			// Sent as this side closes: not run. The frontend gives it
			// to another worker when it reads the io.EOF, which the
			// drain sends once the job before it is answered.
			closed = true
			runMu.Unlock()
			continue
		}
		served = true
		jobCtx, cancelJob := context.WithCancel(ctx)
		running[msg.GetJobId()] = cancelJob
		runMu.Unlock()
		wg.Add(1)
		go func(id uint64, job *rubatopb.QueryJob) {
			defer wg.Done()
			ans := w.runOne(jobCtx, job)
			cancelJob()
			ans.JobId = id
			sendMu.Lock()
			if err := stream.Send(ans); err != nil {
				// The stream is broken; Recv above returns its error.
				level.Debug(f.logger).Log("msg", "send result", "err", err)
			}
			sendMu.Unlock()
			runMu.Lock()
			delete(running, id)
			runMu.Unlock()
			select {
			case answered <- struct{}{}:
			default:
			}
		}(msg.GetJobId(), msg.GetJob())
	}
}

func (w *Worker) runOne(ctx context.Context, job *rubatopb.QueryJob) *rubatopb.WorkerMessage {
	ans, err := w.run(ctx, job)
	if err == nil && ans != nil {
		w.jobs.WithLabelValues("ok").Inc()
		return ans
	}
	if err == nil {
		err = status.Error(codes.Internal, "job gave no answer")
	}
	st, _ := status.FromError(err)
	code := st.Code()
	outcome := "error"
	if ctx.Err() != nil {
		// Cancelled by the frontend or by this querier stopping: Canceled
		// either way, so a frontend that did not ask retries elsewhere.
		outcome, code = "cancelled", codes.Canceled
	}
	w.jobs.WithLabelValues(outcome).Inc()
	return &rubatopb.WorkerMessage{Error: st.Message(), ErrorCode: int32(code)}
}
