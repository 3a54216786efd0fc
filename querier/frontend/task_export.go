package frontend

import (
	"context"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// Task is a job of one tenant as the Queue holds it. Its fields stay
// private: outside the package it is only handed to Enqueue and got back
// from Dequeue.
type Task = task

// NewTask returns a job of tenant for Queue.Enqueue. The Frontend makes its
// own; this exists so that cmd/rubato-ringsim can measure the real queue's
// fairness without a Frontend, a backend and workers around it.
func NewTask(ctx context.Context, tenant string, job *rubatopb.QueryJob) *Task {
	return newTask(ctx, tenant, job)
}
